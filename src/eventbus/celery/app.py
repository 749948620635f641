"""Configuring a Celery app for eventbus: SQS broker from settings, ``SQSConsumer``, the service's queue."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from celery import Celery
from celery.signals import worker_process_shutdown, worker_shutdown

from eventbus.settings import EventBusSettings

if TYPE_CHECKING:
    from eventbus.container import Container

CONSUMER = "eventbus.celery.SQSConsumer"
#: kombu's SQS transport with batched acknowledgements and slot-driven polling (docs/performance.md).
TRANSPORT = "eventbus.celery.transport:Transport"


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
    """Point ``app`` at SQS and install ``SQSConsumer`` (and, with ``EVENTBUS_OUTBOX``, the outbox relay).

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
    app.conf.update(celery_config(settings))
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
    return app


def _shutdown_resources(**_: Any) -> None:
    """Close the resources (the SQLAlchemy engine) of the process's container."""
    from eventbus.container import get_container

    get_container().shutdown_resources()
