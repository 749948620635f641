"""The Consumer contract (:mod:`eventbus.testing.contracts.consumer`): the in-memory consumer, and SQSConsumer in a
real Celery worker (tests/integration/worker_app.py subscribes the suite's three handlers)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from eventbus.adapters.memory import InMemoryConsumer, InMemoryQueue
from eventbus.core.envelope import Metadata
from eventbus.core.registry import Subscription, SubscriptionRegistry
from eventbus.payload import EventPayload
from eventbus.testing.contracts import ConsumerContract, ConsumerHarness
from eventbus.testing.contracts.consumer import OrderPlacedPayload
from tests.support import Worker, make_topology, start_worker


class InMemoryHarness(ConsumerHarness):
    """An :class:`InMemoryConsumer` on its own queue, draining synchronously."""

    def __init__(self, max_receive_count: int) -> None:
        self.calls: dict[str, list[dict[str, Any]]] = {"doGood": [], "alwaysFails": [], "orderPlaced": []}
        registry = SubscriptionRegistry(
            [
                Subscription("doGood", "doGood"),
                Subscription("alwaysFails", "alwaysFails"),
                Subscription("orderPlaced", "orderPlaced", OrderPlacedPayload),
            ]
        )
        self.queue = InMemoryQueue(max_receive_count=max_receive_count)
        handlers = {
            "doGood": self.record("doGood"),
            "alwaysFails": self.record("alwaysFails", fail=True),
            "orderPlaced": self.record("orderPlaced"),
        }
        self.consumer = InMemoryConsumer(self.queue, registry, handlers)

    def record(self, event: str, *, fail: bool = False) -> Callable[[object, Metadata], None]:
        def handler(payload: object, metadata: Metadata) -> None:
            data = payload.model_dump() if isinstance(payload, EventPayload) else dict(payload)  # type: ignore[call-overload]
            self.calls[event].append(data)
            if fail:
                raise RuntimeError("fails on purpose")

        return handler

    def send(self, body: str) -> None:
        self.queue.send(body)

    def settle(self, until: Callable[[], object] | None = None, timeout: float = 20) -> None:
        self.consumer.drain()
        assert len(self.queue) == 0
        if until is not None:
            assert until()

    def handled(self, event: str) -> list[dict[str, Any]]:
        return self.calls[event]

    def dead_letters(self) -> list[str]:
        return self.queue.dead_letters


class TestInMemoryConsumer(ConsumerContract):
    def make_consumer(self) -> ConsumerHarness:
        return InMemoryHarness(self.max_receive_count)


class CeleryWorkerHarness(ConsumerHarness):
    """A running ``celery worker`` (SQSConsumer) on the emulator's SQS, read through its records and its DLQ."""

    def __init__(self, worker: Worker, sqs: Any) -> None:
        self.worker, self.sqs = worker, sqs

    def send(self, body: str) -> None:
        self.sqs.send_message(QueueUrl=self.worker.topology.queue_url, MessageBody=body)

    def settle(self, until: Callable[[], object] | None = None, timeout: float = 20) -> None:
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


@pytest.mark.integration
class TestSqsConsumerInCeleryWorker(ConsumerContract):
    """SQSConsumer in a real ``celery worker`` (tests/integration/worker_app.py) on the emulator's SQS."""

    # under what any SQS queue takes (1 MiB, 256 KiB on a queue left at the former default), so the oversized case
    # reaches the worker
    max_message_bytes = 64 * 1024

    @pytest.fixture(scope="class")
    @classmethod
    def worker(
        cls, sns: Any, sqs: Any, sns_sqs_endpoint: str, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[Worker]:
        """conftest's worker, with the suite's body size limit."""
        topology = make_topology(sns, sqs, f"itest-{uuid.uuid4().hex[:8]}")
        env = {"EVENTBUS_MAX_MESSAGE_BYTES": str(cls.max_message_bytes)}
        running = start_worker(
            "tests.integration.worker_app", topology, sns_sqs_endpoint, tmp_path_factory.mktemp("w"), env=env
        )
        yield running
        running.stop()

    @pytest.fixture(autouse=True)
    def _worker(self, worker: Worker, sqs: Any) -> None:
        self.worker, self.sqs = worker, sqs

    def make_consumer(self) -> ConsumerHarness:
        return CeleryWorkerHarness(self.worker, self.sqs)
