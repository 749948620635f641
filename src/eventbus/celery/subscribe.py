"""``@subscribe``: a Celery task that runs for one event name."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, overload

from celery import Task, shared_task
from celery.exceptions import Reject
from celery.signals import celeryd_after_setup

from eventbus.celery import trace_context
from eventbus.celery.outcomes import DeadLetter
from eventbus.celery.redaction import REDACTOR, ensure_installed, safe_kwargs_repr, secrets_of_kwargs
from eventbus.core.envelope import Metadata
from eventbus.core.idempotency import LeaseKeeper, dedup_key, dedup_owner, run_once
from eventbus.core.naming import event_name_from_function_name
from eventbus.core.payload import EventPayload
from eventbus.core.registry import Subscription, validate_payload
from eventbus.core.tracing import handling
from eventbus.errors import DuplicateInProgress, EnvelopeError
from eventbus.ports import Claim

F = TypeVar("F", bound=Callable[..., Any])

logger = logging.getLogger("eventbus.consumer")

#: Renews the claims of this process's running idempotent handlers: one daemon thread per process, started by the
#: first such handler (in each prefork pool child; once for all threads of a threads pool). ``close()`` stops it.
LEASE_KEEPER = LeaseKeeper()


class EventTask(Task):  # type: ignore[misc]
    """Base class of subscribed tasks: late acks, no ack on failure, redelivery on a lost worker.

    A failing handler's SQS message is not deleted: it becomes visible again after the queue's
    visibility timeout and, past the redrive policy's ``maxReceiveCount``, moves to the
    dead-letter queue.
    """

    #: Delete the SQS message only after the handler returned.
    acks_late = True
    #: A failed handler leaves its message for redelivery (and, eventually, the dead-letter queue).
    acks_on_failure = False
    acks_on_failure_or_timeout = False
    #: A pool child killed mid-task releases its message at once.
    reject_on_worker_lost = True
    #: Events have no caller waiting for a result.
    ignore_result = True
    #: Task events of these tasks leave out the message's secrets.
    Request = "eventbus.celery.redaction:EventRequest"

    #: The event name this task is subscribed to.
    eventbus_event_name: str = ""
    #: The payload class the handler declared, if any.
    eventbus_payload_cls: type[EventPayload] | None = None
    #: Run the handler once per event, however often it is delivered (needs ``EVENTBUS_DEDUP_STORE``).
    eventbus_idempotent: bool = False

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Celery's ``apply_async`` (retries go through it), recording a ``kwargsrepr`` without the secrets.

        (A retry keeps the message's headers, ``eventbus_event_id`` included, so idempotent handlers recognise an
        event's duplicates however many retries it took: ``tests/integration/test_idempotency.py``.)
        """
        if isinstance(kwargs, dict) and "kwargsrepr" not in options:
            options["kwargsrepr"] = safe_kwargs_repr(kwargs)
        return super().apply_async(args, kwargs, **options)

    @classmethod
    def subscription(cls) -> Subscription:
        """This task's subscription, for the consumer's registry."""
        return Subscription(cls.eventbus_event_name, cls.name, cls.eventbus_payload_cls)


def subscriptions_of(tasks: Iterable[Any]) -> list[Subscription]:
    """The subscriptions among a Celery app's tasks."""
    return [task.subscription() for task in tasks if isinstance(task, EventTask) and task.eventbus_event_name]


def _declared_payload_cls(fn: Callable[..., Any]) -> type[EventPayload] | None:
    try:
        hints = inspect.get_annotations(fn, eval_str=True)
    except (NameError, TypeError):
        return None
    hint = hints.get("payload")
    return hint if isinstance(hint, type) and issubclass(hint, EventPayload) else None


def _runner(fn: Callable[..., Any], payload_cls: type[EventPayload] | None, bind: bool) -> Callable[..., Any]:
    @functools.wraps(fn)
    def run(task: Task, *args: Any, **kwargs: Any) -> Any:
        ensure_installed()  # done already where configure() ran before the fork
        with REDACTOR.holding(secrets_of_kwargs(kwargs)):
            return _run(task, args, kwargs)

    def _run(task: Task, args: Any, kwargs: dict[str, Any]) -> Any:
        raw_metadata = kwargs.pop("metadata", None)
        metadata = raw_metadata if isinstance(raw_metadata, Metadata) else Metadata.model_validate(raw_metadata or {})
        payload = kwargs.pop("payload", None)
        if payload_cls is not None and isinstance(payload, dict):
            # the one validation of this event (the consumer leaves it to the process that runs the handler)
            try:
                payload = validate_payload(payload_cls, payload)
            except EnvelopeError as exc:
                raise DeadLetter(str(exc)) from None

        def handle() -> Any:
            with handling(metadata):
                if bind:
                    return fn(task, *args, payload=payload, metadata=metadata, **kwargs)
                return fn(*args, payload=payload, metadata=metadata, **kwargs)

        from eventbus.container import get_container

        container = get_container()
        # the process span: around the dedup check too, so a duplicate shows as a short span of the event's trace
        with container.telemetry().processing(
            event_name=metadata.event_name,
            destination=container.settings().queue_name,
            message_id=str(task.request.id or ""),
            traceparent=metadata.traceparent,
            tracestate=metadata.tracestate,
        ):
            if getattr(task, "eventbus_idempotent", False):
                return _run_once(task, handle)
            return handle()

    return run


def _run_once(task: Task, handle: Callable[[], Any]) -> Any:
    """Run ``handle`` unless this event was handled already; defer it while another delivery handles it."""
    from eventbus.container import get_container

    container = get_container()
    settings = container.settings()
    request = task.request
    event_id = getattr(request, "eventbus_event_id", None) or request.id
    # one execution owns the claim: a redelivery of the same SQS message is another owner, so it never takes over a
    # live claim; the claim is renewed while ``handle`` runs and lapses one lease after its holder died
    owner = dedup_owner(str(request.id))
    key = dedup_key(settings.service, task.name, str(event_id))
    try:
        state, result = run_once(
            container.deduplication_store(),
            key,
            owner,
            handle,
            lease=settings.dedup_lease,
            keep_for=settings.dedup_keep_for,
            keeper=LEASE_KEEPER,
        )
    except DuplicateInProgress:
        logger.info("eventbus: event %s is being handled by another delivery; message %s left", key, request.id)
        raise Reject("duplicate delivery in progress elsewhere", requeue=False) from None
    if state is Claim.DONE:
        container.telemetry().dedup_hit(handler=task.name)
        logger.info("eventbus: event %s was handled already; duplicate message %s acknowledged", key, request.id)
    return result


@overload
def subscribe(fn: F, /) -> Any: ...


@overload
def subscribe(
    *,
    name: str | None = None,
    event: str | None = None,
    payload_cls: type[EventPayload] | None = None,
    bind: bool = True,
    idempotent: bool = False,
    **task_options: Any,
) -> Callable[[F], Any]: ...


def subscribe(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    event: str | None = None,
    payload_cls: type[EventPayload] | None = None,
    bind: bool = True,
    idempotent: bool = False,
    **task_options: Any,
) -> Any:
    """Register ``fn`` as the Celery task that handles one event name.

    The event name is ``event``, else ``name`` (which is also the Celery task name), else the
    function's name in camelCase (``do_good`` -> ``doGood``). The handler is called as
    ``fn(task, payload=..., metadata=...)`` (without ``task`` when ``bind=False``): ``payload``
    is the event's payload dict, or an instance of ``payload_cls`` (or of the ``payload``
    parameter's annotation, when it is an :class:`EventPayload` subclass); ``metadata`` is a
    :class:`~eventbus.core.envelope.Metadata`. A seed-style ``fn(cls, *args, **kwargs)``
    receives both in ``kwargs``. Other keyword arguments are Celery task options.

    ``idempotent=True`` runs the handler once per event however often it is delivered (SQS redelivery, SNS
    duplicates): the event is claimed in the deduplication store (``EVENTBUS_DEDUP_STORE``) before the handler runs
    and recorded as handled after it returned; a duplicate is acknowledged without running, and a delivery that
    arrives while another is being handled is left for redelivery.
    """

    def decorate(func: F) -> Any:
        event_name = event or name or event_name_from_function_name(func.__name__)
        declared = payload_cls or _declared_payload_cls(func)
        options: dict[str, Any] = {
            "base": EventTask,
            "eventbus_event_name": event_name,
            "eventbus_payload_cls": declared,
            "eventbus_idempotent": idempotent,
            **task_options,
        }
        if name is not None:
            options["name"] = name
        return shared_task(bind=True, **options)(_runner(func, declared, bind))

    if fn is not None:
        return decorate(fn)
    return decorate


def _check_worker_at_start(instance: Any = None, **_: Any) -> None:
    """Celery's ``celeryd_after_setup``: the worker's start-up checks (:mod:`eventbus.celery.startup`)."""
    from eventbus.celery.startup import check_worker

    check_worker(instance)


# task messages sent while a handler or a callback task runs carry its trace context (eventbus.celery.trace_context)
trace_context.install()

# connected here, where @subscribe lives: a worker whose app has @subscribe tasks runs the checks even when the app
# never called configure() (and so would otherwise run Celery's consumer, deleting every event)
celeryd_after_setup.connect(_check_worker_at_start, weak=False, dispatch_uid="eventbus-startup-checks")
