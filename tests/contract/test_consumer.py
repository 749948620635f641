"""The Consumer port's contract: the same fates for the in-memory consumer and SQSConsumer in a real worker.

Every harness subscribes three handlers: ``doGood`` records, ``alwaysFails`` records and raises, ``orderPlaced``
declares a payload class (``order_id: int``). Bodies carry a unique marker so tests can share a queue.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from eventbus.adapters.memory import InMemoryConsumer, InMemoryQueue
from eventbus.core.envelope import Metadata
from eventbus.core.registry import Subscription, SubscriptionRegistry
from eventbus.payload import EventPayload
from tests.support import Worker


def body(event: str, payload: dict[str, Any]) -> str:
    return json.dumps({"metadata": {"eventName": event, "publisherName": "contract"}, "payload": payload})


def as_notification(text: str) -> str:
    return json.dumps({"Type": "Notification", "MessageId": str(uuid.uuid4()), "Message": text})


class ConsumerContract:
    """What every consumer must do with each kind of message."""

    __test__ = False
    max_receive_count = 2

    def send(self, text: str) -> None:
        raise NotImplementedError

    def settle(self, until: Any = None, timeout: float = 20) -> None:
        """Let the consumer work until the queue is idle (and ``until()`` holds, if given)."""
        raise NotImplementedError

    def handled(self, event: str) -> list[dict[str, Any]]:
        """Payloads the handler for ``event`` was called with (failed attempts included)."""
        raise NotImplementedError

    def dead_letters(self) -> list[str]:
        raise NotImplementedError

    def test_subscribed_event_is_handled_once(self) -> None:
        marker = uuid.uuid4().hex
        self.send(body("doGood", {"marker": marker}))
        self.settle(lambda: self.mine("doGood", marker))
        assert len(self.mine("doGood", marker)) == 1
        assert not self.dead_with(marker)

    def test_sns_notifications_and_raw_envelopes_are_both_accepted(self) -> None:
        marker = uuid.uuid4().hex
        self.send(as_notification(body("doGood", {"marker": marker})))
        self.send(body("doGood", {"marker": marker}))
        self.settle(lambda: len(self.mine("doGood", marker)) == 2)
        assert len(self.mine("doGood", marker)) == 2

    def test_unsubscribed_event_is_dropped_not_dead_lettered(self) -> None:
        marker = uuid.uuid4().hex
        self.send(body(f"nobody{marker[:6]}", {"marker": marker}))
        self.send(body("doGood", {"marker": marker}))  # a sentinel: once it is handled, the drop has happened
        self.settle(lambda: self.mine("doGood", marker))
        assert not self.dead_with(marker)

    @pytest.mark.parametrize(
        "bad",
        [
            '{"metadata": {"eventName": "doGood", "x": "MARKER"',
            '{"metadata": {"publisherName": "MARKER"}, "payload": {}}',
            '{"metadata": {"eventName": "orderPlaced"}, "payload": {"order_id": "MARKER"}}',
            '{"metadata": {"eventName": "doGood"}, "payload": {"b": "MARKER' + "x" * 270_000 + '"}}',
        ],
        ids=["malformed-json", "no-event-name", "payload-fails-its-class", "oversized"],
    )
    def test_bad_input_is_dead_lettered(self, bad: str) -> None:
        marker = uuid.uuid4().hex
        self.send(bad.replace("MARKER", marker))
        self.settle(lambda: self.dead_with(marker))
        assert len(self.dead_with(marker)) == 1
        assert not self.mine("doGood", marker)

    def test_typed_payload_is_validated(self) -> None:
        self.send(body("orderPlaced", {"order_id": 4242}))
        self.settle(lambda: [p for p in self.handled("orderPlaced") if p.get("order_id") == 4242])

    def test_failing_handler_is_retried_then_dead_lettered(self) -> None:
        marker = uuid.uuid4().hex
        self.send(body("alwaysFails", {"marker": marker}))
        self.settle(lambda: self.dead_with(marker), timeout=40)
        assert len(self.mine("alwaysFails", marker)) == self.max_receive_count

    # helpers
    def mine(self, event: str, marker: str) -> list[dict[str, Any]]:
        return [p for p in self.handled(event) if p.get("marker") == marker]

    def dead_with(self, marker: str) -> list[str]:
        return [d for d in self.dead_letters() if marker in d]


class OrderPlaced(EventPayload):
    order_id: int


class TestInMemoryConsumer(ConsumerContract):
    __test__ = True

    @pytest.fixture(autouse=True)
    def _consumer(self) -> None:
        self.calls: dict[str, list[dict[str, Any]]] = {"doGood": [], "alwaysFails": [], "orderPlaced": []}

        def record(event: str, fail: bool = False) -> Any:
            def handler(payload: object, metadata: Metadata) -> None:
                data = payload.model_dump() if isinstance(payload, EventPayload) else dict(payload)  # type: ignore[call-overload]
                self.calls[event].append(data)
                if fail:
                    raise RuntimeError("fails on purpose")

            return handler

        registry = SubscriptionRegistry(
            [
                Subscription("doGood", "doGood"),
                Subscription("alwaysFails", "alwaysFails"),
                Subscription("orderPlaced", "orderPlaced", OrderPlaced),
            ]
        )
        self.queue = InMemoryQueue(max_receive_count=self.max_receive_count)
        handlers = {
            "doGood": record("doGood"),
            "alwaysFails": record("alwaysFails", True),
            "orderPlaced": record("orderPlaced"),
        }
        self.consumer = InMemoryConsumer(self.queue, registry, handlers)

    def send(self, text: str) -> None:
        self.queue.send(text)

    def settle(self, until: Any = None, timeout: float = 20) -> None:
        self.consumer.drain()
        assert len(self.queue) == 0
        if until is not None:
            assert until()

    def handled(self, event: str) -> list[dict[str, Any]]:
        return self.calls[event]

    def dead_letters(self) -> list[str]:
        return self.queue.dead_letters


@pytest.mark.integration
class TestSqsConsumerInCeleryWorker(ConsumerContract):
    """SQSConsumer in a real ``celery worker`` (tests/integration/worker_app.py) on the emulator's SQS."""

    __test__ = True

    @pytest.fixture(autouse=True)
    def _worker(self, worker: Worker, sqs: Any) -> None:
        self.worker, self.sqs = worker, sqs

    def send(self, text: str) -> None:
        self.sqs.send_message(QueueUrl=self.worker.topology.queue_url, MessageBody=text)

    def settle(self, until: Any = None, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if until is None or until():
                return
            time.sleep(0.2)
        pytest.fail(f"not settled within {timeout}s")

    def handled(self, event: str) -> list[dict[str, Any]]:
        rows = self.worker.records(event)
        return [r.get("payload", r) for r in rows]

    def dead_letters(self) -> list[str]:
        response = self.sqs.receive_message(
            QueueUrl=self.worker.topology.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0
        )
        return [m["Body"] for m in response.get("Messages", [])]
