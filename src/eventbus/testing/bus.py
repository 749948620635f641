"""``TestEventBus``: a service's ``@subscribe`` handlers and callback tasks, run in the test's process.

The bus replaces the hand-written test broker of a conftest (a fresh container, an in-memory publisher, a registry
built from the app's tasks) with one context manager::

    with TestEventBus(app, settings={"service": "orders"}) as bus:
        delivery = bus.deliver(OrderPlaced(order_id=1), entity_id="1")
        assert delivery.fate == "handled"
        assert bus.published.payloads("orderShipped") == [{"order_id": 1}]

Inside the block:

* a fresh container (``EventBusSettings.load(publisher="memory", outbox="off", dedup_store="memory", **settings)``)
  is the process's container; the previous one is back after the block, so no test sees another's events;
* ``app`` is Celery's current app with ``task_always_eager`` and ``task_eager_propagates`` on: ``.delay()`` in the
  code under test runs in place (the previous values are back after the block);
* :meth:`TestEventBus.deliver` gives an event the fate a worker would: the consumer's decision
  (:func:`eventbus.core.dispatch.decide`), then the handler run as a task with the kwargs the consumer builds, its
  payload validated where the handler runs (an invalid one is dead-lettered with the same reason);
* with Django configured, every task run in the block releases the ``transaction.on_commit`` callbacks it
  registered when it ends, as its own commit would in a worker, although the test's transaction never commits
  (``TestCase.captureOnCommitCallbacks(execute=True)`` around the outermost task run). A task that fails rolls
  back its savepoint, and Django drops that savepoint's callbacks: they never run. An eager task that raises gets
  its ``on_failure`` (which Celery skips when it propagates the exception), so its failure event goes out.
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, overload

from celery import Celery, states
from celery.exceptions import Ignore, Reject, Retry
from celery.signals import task_postrun, task_prerun

from eventbus.adapters.memory import InMemoryPublisher
from eventbus.celery.outcomes import DeadLetter
from eventbus.celery.subscribe import subscriptions_of
from eventbus.container import Container, build_container, current_container, set_container
from eventbus.core.dispatch import Fate, decide
from eventbus.core.envelope import Envelope
from eventbus.core.payload import EventPayload
from eventbus.core.registry import SubscriptionRegistry
from eventbus.settings import EventBusSettings

__all__ = ["Delivery", "DeliveryFate", "PublishedEvents", "TestEventBus"]

#: Exceptions by which a task ends without failing (Celery gives them no ``on_failure``).
_NOT_FAILURES = (Ignore, Reject, Retry)
#: What the bus sets on the app inside the block; the previous values come back after it.
_EAGER_CONF = ("task_always_eager", "task_eager_propagates")


class DeliveryFate(StrEnum):
    """What became of one delivered event (compares equal to its value: ``delivery.fate == "handled"``)."""

    #: The handler ran and returned: a worker deletes the message.
    HANDLED = "handled"
    #: The handler raised: a worker leaves the message for redelivery (then SQS's redrive dead-letters it).
    FAILED = "failed"
    #: The message can never be handled (malformed, oversized, invalid payload): a worker dead-letters it.
    DEAD_LETTER = "dead-letter"
    #: No handler subscribes to the event: a worker deletes it unread.
    DROP = "drop"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event delivered through :meth:`TestEventBus.deliver`, and its fate."""

    fate: DeliveryFate
    #: Why it was dropped or dead-lettered (the reason a worker logs), or the failure's exception type.
    reason: str = ""
    #: The envelope as the consumer read it (``None`` when the body is no envelope).
    envelope: Envelope | None = None
    #: What the handler returned (fate ``handled``).
    result: Any = None
    #: What the handler raised (fate ``failed``, with ``deliver(..., raises=False)``).
    exception: BaseException | None = None


class PublishedEvents(Sequence[Envelope]):
    """The envelopes published inside a :class:`TestEventBus` block, in order (a live view)."""

    def __init__(self, publisher: InMemoryPublisher) -> None:
        self._publisher = publisher

    @overload
    def __getitem__(self, index: int) -> Envelope: ...

    @overload
    def __getitem__(self, index: slice) -> list[Envelope]: ...

    def __getitem__(self, index: int | slice) -> Envelope | list[Envelope]:
        return self._publisher.published[index]

    def __len__(self) -> int:
        return len(self._publisher.published)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PublishedEvents({[envelope.event_name for envelope in self]!r})"

    def named(self, event_name: str) -> list[Envelope]:
        """The envelopes of one event name, in publishing order."""
        return [envelope for envelope in self if envelope.event_name == event_name]

    def payloads(self, event_name: str) -> list[dict[str, Any]]:
        """The payloads (wire dicts) of one event name, in publishing order."""
        return [dict(envelope.payload) for envelope in self.named(event_name)]

    def clear(self) -> None:
        """Forget what was published so far."""
        self._publisher.published.clear()


class TestEventBus:
    """An in-process event bus for testing a service built on a Celery app with ``@subscribe`` tasks.

    ``settings`` are :class:`~eventbus.settings.EventBusSettings` values that beat the ``EVENTBUS_*`` environment;
    the bus defaults ``publisher="memory"``, ``outbox="off"`` and ``dedup_store="memory"`` (give others here). Use it
    as a context manager (see the module docstring); one block at a time per bus, in the thread that entered it.
    """

    __test__ = False  # a test kit, not a test class

    def __init__(self, app: Celery, *, settings: Mapping[str, Any] | None = None) -> None:
        self.app = app
        self.settings_values: dict[str, Any] = {
            "publisher": "memory",
            "outbox": "off",
            "dedup_store": "memory",
            **(settings or {}),
        }
        #: Deliveries a worker would dead-letter, in order.
        self.dead_letters: list[Delivery] = []
        #: Deliveries a worker would drop (no handler subscribed), in order.
        self.dropped: list[Delivery] = []
        self._container: Container | None = None
        self._registry: SubscriptionRegistry | None = None
        self._restore: list[Any] = []
        self._thread: int | None = None
        self._running: list[AbstractContextManager[Any] | None] = []

    # ------------------------------------------------------------------ the block

    def __enter__(self) -> TestEventBus:
        if self._container is not None:
            raise RuntimeError("this TestEventBus is in use already: enter one block at a time")
        import celery

        container = build_container(EventBusSettings.load(**self.settings_values))
        self._registry = SubscriptionRegistry(subscriptions_of(self.app.tasks.values()))
        # the container as it was (None: built from the environment on next use), not one built now to restore
        self._restore = [
            current_container(),
            celery.current_app._get_current_object(),
            {name: self.app.conf[name] for name in _EAGER_CONF},
        ]
        set_container(container)
        self._container = container
        self.app.conf.update(dict.fromkeys(_EAGER_CONF, True))
        self.app.set_current()  # shared tasks (``do_it.delay()``) resolve to the current app
        self._thread = threading.get_ident()
        self.dead_letters.clear()
        self.dropped.clear()
        uid = f"eventbus-test-bus-{id(self)}"
        task_prerun.connect(self._task_started, weak=False, dispatch_uid=uid)
        task_postrun.connect(self._task_ended, weak=False, dispatch_uid=uid)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        uid = f"eventbus-test-bus-{id(self)}"
        task_prerun.disconnect(dispatch_uid=uid)
        task_postrun.disconnect(dispatch_uid=uid)
        previous_container, previous_app, previous_conf = self._restore
        self.app.conf.update(previous_conf)
        previous_app.set_current()
        set_container(previous_container)
        container, self._container, self._registry, self._thread = self._container, None, None, None
        self._running.clear()
        if container is not None:
            container.shutdown_resources()

    @property
    def container(self) -> Container:
        """The block's container (the process's container inside the block)."""
        if self._container is None:
            raise RuntimeError("TestEventBus is not entered: use it as `with TestEventBus(app) as bus: ...`")
        return self._container

    @property
    def published(self) -> PublishedEvents:
        """What was published inside the block through the container's in-memory publisher."""
        transport = self.container.transport_publisher()
        if not isinstance(transport, InMemoryPublisher):
            raise RuntimeError(
                "bus.published needs the in-memory publisher: leave the `publisher` setting to the bus "
                "(it defaults to publisher='memory')"
            )
        return PublishedEvents(transport)

    # ------------------------------------------------------------------ delivering events

    def deliver(
        self,
        event: EventPayload | Envelope | Mapping[str, Any] | str | bytes,
        *,
        entity_id: object = None,
        raw: bool = False,
        raises: bool = True,
    ) -> Delivery:
        """Deliver one event as a worker would, and return its fate.

        ``event`` is a payload (its envelope built by the container's ``event_publisher``, ``entity_id`` in its
        metadata), an :class:`Envelope`, a dict envelope, or a message body exactly as SQS would deliver it
        (``str``/``bytes``). An event is sent as an SNS notification (``raw=True``: as raw delivery); its SNS
        MessageId derives from the envelope, so delivering the same envelope twice is a redelivery (an idempotent
        handler runs once).

        Raises:
            Exception: what the handler raised, unless ``raises=False`` (then the fate is ``failed``).
        """
        settings = self.container.settings()
        body = self._body(event, entity_id=entity_id, raw=raw)
        decision = decide(
            body,
            self._subscriptions(),
            max_bytes=settings.max_message_bytes,
            unsubscribed=Fate(settings.unsubscribed),
            validate_payload=False,
        )
        if decision.fate is Fate.DROP:
            delivery = Delivery(DeliveryFate.DROP, decision.reason, decision.envelope)
            self.dropped.append(delivery)
            return delivery
        if decision.fate is Fate.DEAD_LETTER:
            delivery = Delivery(DeliveryFate.DEAD_LETTER, decision.reason, decision.envelope)
            self.dead_letters.append(delivery)
            return delivery
        assert decision.envelope is not None
        assert decision.subscription is not None
        envelope = decision.envelope
        task = self.app.tasks[decision.subscription.handler]
        # the kwargs and the event id the consumer gives a worker's task (celery/task_messages.py, as_task_message)
        kwargs = {"payload": envelope.payload, "metadata": envelope.metadata.to_wire()}
        task_id = str(uuid.uuid4())
        with self._task_transaction():
            outcome = task.apply(
                kwargs=kwargs, task_id=task_id, throw=False, headers={"eventbus_event_id": decision.event_id or task_id}
            )
        retval = outcome.result
        if outcome.state == states.SUCCESS:
            return Delivery(DeliveryFate.HANDLED, envelope=envelope, result=retval)
        if isinstance(retval, DeadLetter):
            delivery = Delivery(DeliveryFate.DEAD_LETTER, str(retval.reason or "rejected by its task"), envelope)
            self.dead_letters.append(delivery)
            return delivery
        if raises and isinstance(retval, BaseException):
            raise retval
        reason = type(retval).__name__ if isinstance(retval, BaseException) else str(outcome.state)
        exception = retval if isinstance(retval, BaseException) else None
        return Delivery(DeliveryFate.FAILED, reason, envelope, exception=exception)

    def run_task(self, task: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Run ``task`` (a callback task, any task of the app) in place, as a worker would; return its result.

        Its after-commit events go out when its transaction ends (see the module docstring).

        Raises:
            Exception: what the task raised (its failure event, if it has one, is published already).
        """
        found = self.app.tasks[task.name]
        with self._task_transaction():
            # throw=False: an eager task that propagates its exception skips its on_failure (no failure event)
            outcome = found.apply(args=args, kwargs=kwargs, throw=False)
        if isinstance(outcome.result, BaseException) and outcome.state != states.SUCCESS:
            raise outcome.result
        return outcome.result

    # ------------------------------------------------------------------ internals

    def _subscriptions(self) -> SubscriptionRegistry:
        self.container  # noqa: B018  (raises outside the block)
        assert self._registry is not None
        return self._registry

    def _body(
        self, event: EventPayload | Envelope | Mapping[str, Any] | str | bytes, *, entity_id: object, raw: bool
    ) -> str | bytes:
        if isinstance(event, (str, bytes)):
            return event
        if isinstance(event, EventPayload):
            text = self.container.event_publisher().envelope(event, entity_id=entity_id).to_json()
        elif isinstance(event, Envelope):
            text = event.to_json()
        elif isinstance(event, Mapping):
            text = json.dumps(dict(event))
        else:
            raise TypeError(f"cannot deliver a {type(event).__name__}: give a payload, an Envelope, a dict or a body")
        if raw:
            return text
        settings = self.container.settings()
        topic_arn = settings.topic_arn or f"arn:aws:sns:{settings.region}:000000000000:{settings.topic}"
        message_id = str(uuid.uuid5(uuid.NAMESPACE_URL, text))
        return json.dumps({"Type": "Notification", "MessageId": message_id, "TopicArn": topic_arn, "Message": text})

    @contextmanager
    def _task_transaction(self) -> Iterator[None]:
        """Release the on-commit callbacks the task run inside registers when it ends (outermost run only)."""
        self._running.append(None)
        try:
            with self._on_commit_release() if len(self._running) == 1 else nullcontext():
                yield
        finally:
            self._running.pop()

    def _task_started(self, task: Any = None, **_: Any) -> None:
        """``task_prerun``: the eager task the code under test started (``.delay()``) gets a worker's view."""
        if threading.get_ident() != self._thread:
            return
        request = getattr(task, "request", None)
        headers = getattr(request, "headers", None)
        if request is not None and isinstance(headers, dict) and "eventbus_event_id" in headers:
            # a worker's request carries the message's headers as attributes; an eager request only as ``headers``
            request.eventbus_event_id = headers["eventbus_event_id"]
        release = self._on_commit_release() if not self._running else None
        if release is not None:
            release.__enter__()
        self._running.append(release)

    def _task_ended(
        self, task: Any = None, task_id: str = "", args: Any = None, kwargs: Any = None, state: Any = None, **_: Any
    ) -> None:
        """``task_postrun``: the task's transaction is over: release its on-commit callbacks (outermost run).

        An eager task that raises with ``task_eager_propagates`` leaves Celery before its ``on_failure`` (the state
        is still ``None`` here, the exception in flight): it is called here, as a worker calls it, so a callback
        task's failure event is published when ``.delay()`` raises in the code under test.
        """
        if threading.get_ident() != self._thread or not self._running:
            return
        release = self._running.pop()
        try:
            failed = sys.exc_info()[1]
            propagated = state is None and isinstance(failed, Exception) and not isinstance(failed, _NOT_FAILURES)
            if propagated and task is not None and getattr(task.request, "is_eager", False):
                from billiard.einfo import ExceptionInfo

                task.on_failure(failed, task_id, args, kwargs, ExceptionInfo(sys.exc_info()))
        finally:
            if release is not None:
                release.__exit__(None, None, None)

    def _on_commit_release(self) -> AbstractContextManager[Any]:
        alias = self.container.settings().django_database
        if not _django_has(alias):
            return nullcontext()
        from django.test import TestCase

        return TestCase.captureOnCommitCallbacks(using=alias, execute=True)


def _django_has(alias: str) -> bool:
    """Whether this process runs a configured Django project with the database ``alias``."""
    if "django.conf" not in sys.modules:
        return False
    from django.conf import settings

    if not settings.configured:
        return False
    from django.db import connections

    return alias in connections.settings
