"""The batching buffer behind the transport's DeleteMessageBatch / ChangeMessageVisibilityBatch."""

from __future__ import annotations

import pytest

from eventbus.celery.transport.batching import BatchBuffer, Entry


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def entry(i: int) -> Entry:
    return Entry(receipt_handle=f"rh-{i}", message_id=f"m-{i}", queue="q")


def test_a_full_batch_is_handed_out_at_once() -> None:
    buffer = BatchBuffer(batch_size=10, max_delay=1.0, clock=Clock())
    assert all(buffer.add("url", entry(i)) is None for i in range(9))
    batch = buffer.add("url", entry(9))
    assert batch is not None
    assert [e.message_id for e in batch] == [f"m-{i}" for i in range(10)]
    assert len(buffer) == 0


def test_queues_are_batched_separately_and_only_overdue_groups_are_due() -> None:
    clock = Clock()
    buffer = BatchBuffer(batch_size=10, max_delay=0.05, clock=clock)
    buffer.add("a", entry(1))
    clock.now += 0.03
    buffer.add("b", entry(2))
    assert buffer.due() == []
    clock.now += 0.03
    due = buffer.due()
    assert [(url, [e.message_id for e in batch]) for url, batch in due] == [("a", ["m-1"])]
    assert len(buffer) == 1
    assert [url for url, _ in buffer.due(everything=True)] == ["b"]


def test_failed_entries_are_retried_until_attempts_run_out() -> None:
    buffer = BatchBuffer(batch_size=10, max_delay=0.0, clock=Clock(), max_attempts=3)
    failed = [entry(1)]
    assert buffer.retry("url", failed) == []
    assert buffer.retry("url", [buffer.due()[0][1][0]]) == []
    given_up = buffer.retry("url", [buffer.due()[0][1][0]])
    assert [e.message_id for e in given_up] == ["m-1"]
    assert given_up[0].attempts == 3
    assert len(buffer) == 0


def test_batch_size_is_bounded_by_sqs() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        BatchBuffer(batch_size=11)
