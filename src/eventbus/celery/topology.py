"""The topology a Celery app implies: its ``@subscribe`` handlers and the settings, as a
:class:`~eventbus.core.topology.Topology`; and :func:`load_app`, which finds the app as ``celery -A`` does.

The event names of the subscription's filter policy are the app's ``@subscribe`` tasks' (the consumer's registry
reads the same tasks, so the queue receives exactly the events some handler takes); the queue's visibility timeout
is checked against those tasks' hard time limits. With ``large_payload_bucket`` set (claim-check on) the topology holds
that bucket and the filter policy matches the ``eventName`` message attribute instead of the body. With ``fifo`` the
topic, the queue and its dead-letter queue are FIFO.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from celery import Celery
from celery.app.utils import find_app

from eventbus.celery.subscribe import EventTask, subscriptions_of
from eventbus.core.topology import Topology, topology_of
from eventbus.errors import ConfigurationError
from eventbus.settings import EventBusSettings

__all__ = ["handler_time_limits", "load_app", "topology_for"]


def load_app(spec: str) -> Celery:
    """The Celery app ``spec`` names, resolved as ``celery -A`` resolves it, with its tasks registered.

    ``spec`` is ``pkg.module:attr``, ``pkg.module.attr``, or ``pkg.module`` (its ``app`` or ``celery`` attribute, a
    ``celery`` submodule of a package, or the module's one Celery instance); the current directory is importable, as
    for ``celery -A``. The app's default modules (``include``, ``imports``, autodiscovered packages) are imported, so
    every ``@subscribe`` task a worker of this app would run is registered.

    Raises:
        ConfigurationError: the module cannot be imported, or ``spec`` names no Celery app.
    """
    try:
        found = find_app(spec)
    except (ImportError, AttributeError) as exc:
        # one line naming the spec beats a traceback from deep inside Celery's symbol lookup
        raise ConfigurationError(f"cannot load the Celery app {spec!r}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(found, Celery):
        raise ConfigurationError(f"{spec!r} is a {type(found).__name__}, not a Celery app")
    try:
        found.loader.import_default_modules()
    except ImportError as exc:
        raise ConfigurationError(f"the Celery app {spec!r} cannot import its task modules: {exc}") from exc
    return found


def _event_tasks(app: Celery) -> list[EventTask]:
    """The app's ``@subscribe`` tasks (reading ``app.tasks`` finalizes the app, attaching shared tasks)."""
    tasks = app.tasks
    return [tasks[subscription.handler] for subscription in subscriptions_of(tasks.values())]


def handler_time_limits(app: Celery, tasks: Iterable[Any] | None = None) -> list[float | None]:
    """Each ``@subscribe`` task's hard time limit: its own ``time_limit``, else the app's ``task_time_limit``
    (``None``: no limit)."""
    default = app.conf.task_time_limit
    chosen = _event_tasks(app) if tasks is None else tasks
    return [task.time_limit if task.time_limit is not None else default for task in chosen]


def topology_for(app: Celery, settings: EventBusSettings) -> Topology:
    """The topology ``app`` and ``settings`` imply: the settings' topic and queue, the filter policy from the app's
    ``@subscribe`` handlers (none when ``settings.filter_policy`` is off), the visibility timeout checked against
    their time limits, the service's tags, the claim-check bucket with its expiry (``large_payload_bucket``,
    ``large_payload_expiry_days``), and FIFO topic and queues (``fifo``).

    Raises:
        ConfigurationError: the filter policy would exceed SNS's limits, or the bucket name is not a valid one.
    """
    tasks = _event_tasks(app)
    event_names = sorted({task.eventbus_event_name for task in tasks}) if settings.filter_policy else None
    # an explicit topic ARN wins over the name, as it does for the publisher
    topic = settings.topic_arn.rsplit(":", 1)[-1] if settings.topic_arn else settings.topic
    return topology_of(
        topic=topic,
        queue=settings.queue_name,
        event_names=event_names,
        max_receive_count=settings.max_receive_count,
        visibility_timeout=settings.visibility_timeout,
        handler_time_limits=handler_time_limits(app, tasks),
        raw_delivery=settings.raw_delivery,
        max_message_bytes=settings.max_message_bytes,
        tags={"eventbus:service": settings.service, "eventbus:environment": settings.environment},
        payload_bucket=settings.large_payload_bucket,
        payload_expiry_days=settings.large_payload_expiry_days,
        fifo=settings.fifo,
    )
