"""Configuring a Celery app for eventbus: SQS broker from settings, ``SQSConsumer``, the service's queue."""

from __future__ import annotations

import logging
import os
import warnings
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from celery import Celery
from celery.app.defaults import DEFAULTS
from celery.signals import worker_process_shutdown, worker_shutdown

from eventbus.settings import EventBusSettings

if TYPE_CHECKING:
    from eventbus.container import Container

CONSUMER = "eventbus.celery.SQSConsumer"
#: kombu's SQS transport with batched acknowledgements and slot-driven polling (docs/performance.md).
TRANSPORT = "eventbus.celery.transport:Transport"

logger = logging.getLogger("eventbus.configure")

#: Settings where a value the user set is kept (a tuning choice, or plain tasks routed elsewhere), with the reason.
KEPT: Final = {
    "worker_prefetch_multiplier": "a tuning choice (EVENTBUS_PREFETCH_MULTIPLIER is not used)",
    "broker_connection_retry_on_startup": "whether a worker retries an unreachable broker at start is yours to choose",
}
#: Why eventbus replaces a value the user set for each of the other settings it sets.
_REPLACED_BECAUSE: Final = {
    "broker_url": "the worker consumes the SQS queue of the EVENTBUS_* settings",
    "broker_transport": "eventbus's SQS transport settles messages (batched deletes, dead-letter copies, heartbeat)",
    "task_default_queue": (
        "a worker without -Q must consume EVENTBUS_QUEUE_NAME; send plain tasks elsewhere with task_routes"
    ),
    "worker_consumer": "only eventbus.celery.SQSConsumer routes events to @subscribe tasks",
    "accept_content": "the queue is shared with other services' events: only JSON reaches a decoder",
    "result_accept_content": "only JSON reaches a decoder",
    "task_serializer": "task messages on the event queue must be JSON",
    "result_serializer": "results must be JSON",
    "worker_enable_remote_control": "kombu's SQS transport would build its fanout exchange out of SNS topics",
    "worker_send_task_events": "kombu's SQS transport would build its fanout exchange out of SNS topics",
    "task_send_sent_event": "kombu's SQS transport would build its fanout exchange out of SNS topics",
}
#: Where :func:`configure` remembers what it set on an app, so configuring it again is no "user's value".
_APPLIED = "eventbus_applied"


def celery_config(settings: EventBusSettings) -> dict[str, Any]:
    """The Celery settings eventbus needs, as a dict for ``app.conf.update``."""
    transport: dict[str, Any] = {
        "region": settings.region,
        "wait_time_seconds": settings.wait_time_seconds,
        "polling_interval": settings.polling_interval,
        "ack_batch_size": settings.ack_batch_size,
        "ack_flush_interval": settings.ack_flush_interval,
        "heartbeat": settings.heartbeat,
        "outage_backoff_max": settings.outage_backoff_max,
    }
    if settings.endpoint_url:
        transport["is_secure"] = settings.endpoint_url.startswith("https://")
    return {
        "broker_url": settings.broker_url(),
        "broker_transport": TRANSPORT,
        # receives ask for 10; a window of 10 per pool process keeps every receive full
        "worker_prefetch_multiplier": settings.prefetch_multiplier,
        "broker_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "worker_consumer": CONSUMER,
        # the queue is shared with other services' events: only JSON ever reaches a decoder (see celery/trust.py)
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_serializer": "json",
        "result_serializer": "json",
        "task_default_queue": settings.queue_name,
        # Remote control and events need a fanout exchange, which kombu's SQS transport
        # would build out of SNS topics; a service's event queue is not the place for them.
        "worker_enable_remote_control": False,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
    }


def configure(app: Celery, container: Container | EventBusSettings | None = None) -> Celery:
    """Point ``app`` at SQS and install ``SQSConsumer`` (with ``EVENTBUS_OUTBOX``, the outbox relay; with
    ``EVENTBUS_HEALTH_FILE``, the health file of :mod:`eventbus.celery.health`).

    The user's own Celery settings are respected where that is safe. For each setting of :func:`celery_config` that
    the app already holds with a value the user set (not Celery's default, not the value eventbus set before):

    * kept, with an INFO line: ``worker_prefetch_multiplier``, ``broker_connection_retry_on_startup``;
    * ``broker_url``: kept when it is an ``sqs://`` URL for the same endpoint (its credentials, say), otherwise
      replaced;
    * ``broker_transport_options``: merged: the user's other keys are kept, eventbus's keys win;
    * every other one (``task_default_queue``: route plain tasks elsewhere with ``task_routes``; ``worker_consumer``,
      ``broker_transport``, ``accept_content``, the serializers, remote control
      and task events): replaced, because eventbus needs its value.

    Every replacement is a WARNING naming the setting, the user's value (a URL's credentials masked) and why.

    Everything is read from one place: ``container``'s settings, by default the process's container
    (:func:`eventbus.container.get_container`, built from the ``EVENTBUS_*`` environment), which the consumer,
    the tasks and the outbox relay of this process use too. A container passed here becomes the process's container.
    (Passing :class:`EventBusSettings` is the former spelling: it builds a container from them.)

    With ``EVENTBUS_SIGNING_KEY`` every task message the app sends is signed, and its workers run task messages from
    the queue only when signed (:mod:`eventbus.celery.trust`).
    """
    from eventbus.celery.redaction import install
    from eventbus.container import build_container, get_container, set_container

    if isinstance(container, EventBusSettings):
        warnings.warn(
            "configure(app, settings) is deprecated: call configure(app) (settings from the environment) or "
            "configure(app, build_container(settings))",
            DeprecationWarning,
            stacklevel=2,
        )
        container = build_container(container)
    if container is not None:
        set_container(container)
    settings = (container or get_container()).settings()
    wanted = celery_config(settings)
    app.conf.update(_respecting_user(app, wanted, settings))
    setattr(app, _APPLIED, wanted)  # on the app, not its conf: a later config_from_object() reloads the conf
    if settings.signing_key is not None:
        from eventbus.celery.trust import install_signing

        install_signing(app, settings.signing_key)
    install()  # before the pool forks: every worker process redacts its log records
    # engines and clients the container started are closed when the worker (and each pool process) stops
    worker_shutdown.connect(_shutdown_resources, weak=False, dispatch_uid="eventbus-shutdown-resources")
    worker_process_shutdown.connect(_shutdown_resources, weak=False, dispatch_uid="eventbus-shutdown-resources-child")
    if settings.outbox != "off":
        from eventbus.celery.outbox import OutboxRelayStep

        app.steps["worker"].add(OutboxRelayStep)
    if settings.health_file:
        from eventbus.celery.health import HealthFileStep

        app.steps["consumer"].add(HealthFileStep)
    return app


def _shutdown_resources(**_: Any) -> None:
    """Close the resources (the SQLAlchemy engine) of the process's container."""
    from eventbus.container import get_container

    get_container().shutdown_resources()


def _respecting_user(app: Celery, wanted: dict[str, Any], settings: EventBusSettings) -> dict[str, Any]:
    """``wanted`` with the user's values kept where :func:`configure`'s rule keeps them, each decision logged."""
    from eventbus.celery.startup import mask_url

    applied: dict[str, Any] = getattr(app, _APPLIED, None) or {}
    result = dict(wanted)
    for key, ours in wanted.items():
        theirs = app.conf.get(key)
        if key == "broker_transport_options":
            result[key] = _merged_options(dict(theirs or {}), ours, dict(applied.get(key) or {}))
            continue
        if theirs is None or theirs == ours or theirs == DEFAULTS.get(key) or theirs == applied.get(key):
            continue
        if isinstance(theirs, (list, tuple)) and list(theirs) == list(ours if isinstance(ours, list) else [ours]):
            continue
        shown = mask_url(theirs) if isinstance(theirs, str) and "://" in theirs else repr(theirs)
        if key == "broker_url" and _same_sqs_endpoint(str(theirs), settings):
            result[key] = theirs
            logger.info("eventbus: configure() keeps broker_url %s (an sqs:// URL for EVENTBUS_ENDPOINT_URL)", shown)
        elif key in KEPT:
            result[key] = theirs
            logger.info("eventbus: configure() keeps your %s=%s: %s", key, shown, KEPT[key])
        else:
            logger.warning(
                "eventbus: configure() replaces your %s=%s with %s: %s",
                key,
                shown,
                mask_url(ours) if key == "broker_url" else repr(ours),
                _REPLACED_BECAUSE.get(key, "eventbus needs its value"),
            )
    environment_url = os.environ.get("CELERY_BROKER_URL")
    if environment_url and not _same_sqs_endpoint(environment_url, settings):
        logger.warning(
            "eventbus: CELERY_BROKER_URL=%s is set in the environment, and Celery prefers it to broker_url: unset it "
            "(the worker must consume the SQS queue of the EVENTBUS_* settings)",
            mask_url(environment_url),
        )
    return result


def _merged_options(theirs: dict[str, Any], ours: dict[str, Any], applied: dict[str, Any]) -> dict[str, Any]:
    """The user's transport options with eventbus's on top; a user's value replaced is logged."""
    for key, value in ours.items():
        if key in theirs and theirs[key] != value and theirs[key] != applied.get(key):
            logger.warning(
                "eventbus: configure() replaces your broker_transport_options[%r]=%r with %r: the EVENTBUS_* settings "
                "decide it",
                key,
                theirs[key],
                value,
            )
    return {**theirs, **ours}


def _same_sqs_endpoint(url: str, settings: EventBusSettings) -> bool:
    """Whether ``url`` is an ``sqs://`` broker URL for the settings' endpoint (no host: AWS itself)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme != "sqs":
        return False
    host = parts.netloc.rsplit("@", 1)[-1]
    if not settings.endpoint_url:
        return host in ("", "localhost") and not parts.path.strip("/")
    return host == urlsplit(settings.endpoint_url).netloc.rsplit("@", 1)[-1]
