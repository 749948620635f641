"""The Consumer port's contract suite: every consumer gives each kind of message the same fate.

Subclass :class:`ConsumerContract`, name the subclass ``Test...`` and implement one hook, ``make_consumer()``, that
returns a :class:`ConsumerHarness`: the consumer under test, started on a queue of its own, with three handlers
subscribed:

* ``doGood``: records its payload;
* ``alwaysFails``: records its payload, then raises;
* ``orderPlaced``: declares :class:`OrderPlacedPayload` (``order_id: int``) and records the validated payload.

The queue dead-letters a message after ``max_receive_count`` receives (the suite's attribute, 2 by default); the
consumer dead-letters bodies over ``max_message_bytes`` (the suite's attribute, the consumer's default, 1 MiB: when the
queue cannot take a body that large, set it lower, and the consumer's limit with it)::

    class TestMyConsumer(ConsumerContract):
        def make_consumer(self) -> ConsumerHarness:
            return MyHarness(max_receive_count=self.max_receive_count)

Bodies carry a unique marker, so tests may share one queue and one consumer. ``make_consumer`` is called once per test,
on first use. Collection: a subclass runs when its name starts with ``Test`` (``__test__`` is set from the name, unless
the class sets it), so an intermediate subclass named otherwise runs nothing. Set-up the consumer needs (a broker, a
worker process) goes in the hook or in the subclass's own pytest fixtures, which run before each test body.
"""

from __future__ import annotations

import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from functools import cached_property
from typing import Any, ClassVar

import pytest

from eventbus.core.envelope import MAX_MESSAGE_BYTES
from eventbus.core.payload import EventPayload
from eventbus.testing.contracts.base import Contract

__all__ = ["ConsumerContract", "ConsumerHarness", "OrderPlacedPayload", "as_notification", "event_body"]


def event_body(event: str, payload: dict[str, Any]) -> str:
    """A raw-delivery envelope of ``event`` carrying ``payload``."""
    return json.dumps({"metadata": {"eventName": event, "publisherName": "contract"}, "payload": payload})


def as_notification(text: str) -> str:
    """``text`` wrapped as SNS delivers it to SQS without raw delivery."""
    return json.dumps({"Type": "Notification", "MessageId": str(uuid.uuid4()), "Message": text})


class OrderPlacedPayload(EventPayload):
    """The payload class the ``orderPlaced`` handler declares."""

    order_id: int


class ConsumerHarness(ABC):
    """The consumer under test, as the suite drives it: put bodies on its queue, let it work, read what happened."""

    @abstractmethod
    def send(self, body: str) -> None:
        """Put a raw message body on the consumer's queue."""

    @abstractmethod
    def settle(self, until: Callable[[], object] | None = None, timeout: float = 20) -> None:
        """Let the consumer work until the queue is idle and ``until()`` (if given) is true; fail after ``timeout``."""

    @abstractmethod
    def handled(self, event: str) -> list[dict[str, Any]]:
        """The payloads (as dicts) the handler of ``event`` was called with, failed attempts included."""

    @abstractmethod
    def dead_letters(self) -> list[str]:
        """The bodies in the dead-letter queue."""


class ConsumerContract(Contract):
    """What every consumer must do with each kind of message."""

    #: Receives before the queue dead-letters a message; the harness's queue must use it.
    max_receive_count: ClassVar[int] = 2
    #: The consumer's body size limit; the harness's consumer must use it. The oversized case sends a body just
    #: over it.
    max_message_bytes: ClassVar[int] = MAX_MESSAGE_BYTES

    def make_consumer(self) -> ConsumerHarness:
        """Hook: the consumer under test, running the three handlers the module docstring describes."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_consumer()")

    @cached_property
    def consumer(self) -> ConsumerHarness:
        """This test's consumer (:meth:`make_consumer`, called once)."""
        return self.make_consumer()

    def test_subscribed_event_is_handled_once(self) -> None:
        marker = uuid.uuid4().hex
        self.consumer.send(event_body("doGood", {"marker": marker}))
        self.consumer.settle(lambda: self.mine("doGood", marker))
        assert len(self.mine("doGood", marker)) == 1
        assert not self.dead_with(marker)

    def test_sns_notifications_and_raw_envelopes_are_both_accepted(self) -> None:
        marker = uuid.uuid4().hex
        self.consumer.send(as_notification(event_body("doGood", {"marker": marker})))
        self.consumer.send(event_body("doGood", {"marker": marker}))
        self.consumer.settle(lambda: len(self.mine("doGood", marker)) == 2)
        assert len(self.mine("doGood", marker)) == 2

    def test_unsubscribed_event_is_dropped_not_dead_lettered(self) -> None:
        marker = uuid.uuid4().hex
        self.consumer.send(event_body(f"nobody{marker[:6]}", {"marker": marker}))
        # a sentinel: once it is handled, the drop has happened
        self.consumer.send(event_body("doGood", {"marker": marker}))
        self.consumer.settle(lambda: self.mine("doGood", marker))
        assert not self.dead_with(marker)

    @pytest.mark.parametrize(
        "bad",
        [
            '{"metadata": {"eventName": "doGood", "x": "MARKER"',
            '{"metadata": {"publisherName": "MARKER"}, "payload": {}}',
            '{"metadata": {"eventName": "orderPlaced"}, "payload": {"order_id": "MARKER"}}',
            '{"metadata": {"eventName": "doGood"}, "payload": {"b": "MARKER", "padding": "PADDING"}}',
        ],
        ids=["malformed-json", "no-event-name", "payload-fails-its-class", "oversized"],
    )
    def test_bad_input_is_dead_lettered(self, bad: str) -> None:
        marker = uuid.uuid4().hex
        self.consumer.send(bad.replace("MARKER", marker).replace("PADDING", "x" * self.max_message_bytes))
        self.consumer.settle(lambda: self.dead_with(marker))
        assert len(self.dead_with(marker)) == 1
        assert not self.mine("doGood", marker)

    def test_typed_payload_is_validated(self) -> None:
        self.consumer.send(event_body("orderPlaced", {"order_id": 4242}))
        self.consumer.settle(lambda: [p for p in self.consumer.handled("orderPlaced") if p.get("order_id") == 4242])

    def test_failing_handler_is_retried_then_dead_lettered(self) -> None:
        marker = uuid.uuid4().hex
        self.consumer.send(event_body("alwaysFails", {"marker": marker}))
        self.consumer.settle(lambda: self.dead_with(marker), timeout=40)
        assert len(self.mine("alwaysFails", marker)) == self.max_receive_count

    def mine(self, event: str, marker: str) -> list[dict[str, Any]]:
        """The payloads ``event``'s handler received that carry ``marker``."""
        return [p for p in self.consumer.handled(event) if p.get("marker") == marker]

    def dead_with(self, marker: str) -> list[str]:
        """The dead-lettered bodies that contain ``marker``."""
        return [d for d in self.consumer.dead_letters() if marker in d]
