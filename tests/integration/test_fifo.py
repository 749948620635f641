"""FIFO end to end with real workers (prefork -c 4) on the embedded SNS/SQS (or ``EVENTBUS_TEST_ENDPOINT_URL``):
events published through an SNS FIFO topic are handled strictly in order within each message group (the event's
``entityId``), one at a time, while groups run in parallel across the pool; a failure delays its own group only,
which stays in order; a worker killed mid-stream (SIGKILL) or stopped warm loses nothing, and the next one completes
every group in order (duplicates after the kill are counted and printed)."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from eventbus.adapters.aws import SnsPublisher
from eventbus.adapters.memory import InMemoryPublisher
from eventbus.core.envelope import Envelope
from eventbus.core.publishing import EventPublisher
from eventbus.errors import PublishError
from tests.integration.fifo_app import FifoStepPayload
from tests.support import Topology, Worker, make_fifo_topology, start_worker, wait_until

pytestmark = pytest.mark.integration


def steps(
    groups: int, per_group: int, *, sleep_ms: tuple[int, int] = (0, 0), fail: set[tuple[str, int]] = frozenset()
) -> list[Envelope]:  # type: ignore[assignment]
    """Envelopes of ``groups`` x ``per_group`` steps, interleaved across groups as a busy producer would send them."""
    events = EventPublisher(InMemoryPublisher(), "fifo-test")
    chance = random.Random(15)
    out = []
    for seq in range(per_group):
        for g in range(groups):
            group = f"g{g:02d}"
            payload = FifoStepPayload(
                group=group, seq=seq, sleep_ms=chance.randint(*sleep_ms), fail_once=(group, seq) in fail
            )
            out.append(events.envelope(payload, entity_id=group))
    return out


def publish(sns: Any, topology: Topology, envelopes: list[Envelope]) -> None:
    publisher = SnsPublisher(sns, topic_arn=topology.topic_arn)
    assert publisher.fifo
    for start in range(0, len(envelopes), 10):
        publisher.publish_batch(envelopes[start : start + 10])


def fifo_worker(topology: Topology, endpoint: str, tmp: Path) -> Worker:
    tmp.mkdir(exist_ok=True)
    # short polls: moto's long poll takes the FIFO groups in flight when it starts for the whole wait, so a group
    # its delete unlocks would wait for the next receive, up to a second per step (SQS and LocalStack answer at once)
    env = {"EVENTBUS_FIFO": "true", "EVENTBUS_WAIT_TIME_SECONDS": "0", "EVENTBUS_POLLING_INTERVAL": "0.05"}
    return start_worker("tests.integration.fifo_app", topology, endpoint, tmp, "-c", "4", env=env)


def by_group(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: r["start"]):
        grouped[row["group"]].append(row)
    return grouped


def busy_time(rows: list[dict[str, Any]]) -> float:
    """Seconds during which at least one of the rows' handlers was running (the union of their intervals)."""
    busy = 0.0
    until = float("-inf")
    for row in sorted(rows, key=lambda r: r["start"]):
        start = max(row["start"], until)
        if row["end"] > start:
            busy += row["end"] - start
        until = max(until, row["end"])
    return busy


def test_each_group_in_publish_order_one_at_a_time_and_groups_in_parallel_a_failure_delaying_only_its_group(
    sns: Any, sqs: Any, sns_sqs_endpoint: str, tmp_path: Path
) -> None:
    groups, per_group = 20, 50
    topology = make_fifo_topology(sns, sqs, f"fifo-{uuid.uuid4().hex[:8]}", visibility=3)
    envelopes = steps(groups, per_group, sleep_ms=(10, 30), fail={("g03", 10)})
    worker = fifo_worker(topology, sns_sqs_endpoint, tmp_path)
    try:
        began = time.time()
        publish(sns, topology, envelopes)
        rows = wait_until(lambda: len(r := worker.records("step")) >= groups * per_group and r, timeout=180)
        finished = time.time()
    finally:
        worker.stop()
    grouped = by_group(rows)
    assert len(grouped) == groups
    for group, handled in grouped.items():
        # in publish order, each once (no Celery retry reorders it)
        assert [row["seq"] for row in handled] == list(range(per_group)), group
        # one at a time: each step started after the one before it ended
        for before, after in itertools.pairwise(handled):
            assert after["start"] >= before["end"] - 0.001, (group, before, after)
    (failure,) = worker.records("failed")
    assert (failure["group"], failure["seq"]) == ("g03", 10)
    # the failed step came back after its visibility timeout, and the steps behind it waited for it
    g03 = grouped["g03"]
    assert g03[10]["start"] >= failure["at"] + 2.5
    # meanwhile g03 stood still and the other groups kept flowing
    window = [row for row in rows if failure["at"] < row["start"] < g03[10]["start"]]
    assert not [row for row in window if row["group"] == "g03"]
    assert len(window) >= 20, len(window)
    # groups ran in parallel, across the pool: while any handler ran, on average well over one did. Measured over
    # the time some handler ran, not from first start to last end: on a slow machine the emulator's own time between
    # receives (nothing running) would otherwise decide it (a CI run: 13.5 s from first to last for a serial sum of
    # 19.6 s, with 2.4 handlers running on average whenever one was)
    flowing = [row for row in rows if row["group"] != "g03"]
    serial = sum(row["end"] - row["start"] for row in flowing)
    handling = max(row["end"] for row in flowing) - min(row["start"] for row in flowing)
    running = busy_time(flowing)
    assert serial / running >= 1.8, (serial, running)
    assert len({row["pid"] for row in rows}) == 4
    overlap = sum(1 for a, b in itertools.pairwise(rows) if a["group"] != b["group"] and b["start"] < a["end"])
    assert overlap > 0
    print(
        f"FIFO {groups}x{per_group}: {handling:.1f}s from first start to last end ({finished - began:.1f}s in all with "
        f"the publish and g03), their handlers' serial sum {serial:.1f}s (g03 left out: it waited for its failed "
        f"step), {serial / running:.2f} handlers running on average while any was"
    )


def test_workers_killed_or_stopped_mid_stream_leave_every_group_complete_and_in_order(
    sns: Any, sqs: Any, sns_sqs_endpoint: str, tmp_path: Path
) -> None:
    groups, per_group = 8, 25
    topology = make_fifo_topology(sns, sqs, f"fifo-kill-{uuid.uuid4().hex[:8]}", visibility=2)
    publish(sns, topology, steps(groups, per_group, sleep_ms=(5, 15)))
    first = fifo_worker(topology, sns_sqs_endpoint, tmp_path / "first")
    try:
        wait_until(lambda: len(first.records("step")) >= groups * per_group // 3, timeout=60)
    finally:
        os.killpg(first.process.pid, signal.SIGKILL)
        first.process.wait()
    # a second worker is stopped warm two thirds in (what it held and had not started goes back at once)
    second = fifo_worker(topology, sns_sqs_endpoint, tmp_path / "second")
    try:
        wait_until(
            lambda: len(first.records("step") + second.records("step")) >= 2 * groups * per_group // 3, timeout=90
        )
    finally:
        second.stop()
    third = fifo_worker(topology, sns_sqs_endpoint, tmp_path / "third")
    try:

        def complete() -> list[dict[str, Any]] | None:
            rows = first.records("step") + second.records("step") + third.records("step")
            done = {(r["group"], r["seq"]) for r in rows}
            return rows if len(done) == groups * per_group else None

        rows = wait_until(complete, timeout=120)
    finally:
        third.stop()
    duplicates = len(rows) - groups * per_group
    for group, handled in by_group(rows).items():
        seqs = [row["seq"] for row in handled]
        # never ahead of the group: each step is at most one past the furthest handled so far (a redelivery after
        # the kill may repeat steps whose delete had not gone out, never skip one)
        furthest = -1
        for seq in seqs:
            assert seq <= furthest + 1, (group, seqs)
            furthest = max(furthest, seq)
        assert sorted(set(seqs)) == list(range(per_group)), group
    print(f"FIFO kill: {duplicates} duplicate(s) of {groups * per_group} events after a SIGKILL and a warm stop")


def test_the_publisher_sends_groups_and_deduplication_ids_and_never_lets_an_event_overtake_a_failed_one(
    sns: Any, sqs: Any
) -> None:
    topology = make_fifo_topology(sns, sqs, f"fifo-pub-{uuid.uuid4().hex[:8]}")
    publisher = SnsPublisher(sns, topic_arn=topology.topic_arn, max_message_bytes=4096)
    events = EventPublisher(InMemoryPublisher(), "fifo-test")

    def step(group: str, seq: int, size: int = 0) -> Envelope:
        return events.envelope(FifoStepPayload(group=group, seq=seq, sleep_ms=size), entity_id=group)

    too_large = step("a", 1)
    too_large.payload["padding"] = "x" * 5000  # over this publisher's limit: refused, never sent
    batch = [step("a", 0), too_large, step("b", 0), step("a", 2), step("b", 1), step("a", 3)]
    with pytest.raises(PublishError) as failed:
        publisher.publish_batch(batch)
    # a1 refused; a2 and a3 held back behind it (sent, they would overtake it); b went out
    assert failed.value.failed_ids == ("1", "3", "5")
    assert "held back behind an earlier failure of their message group" in str(failed.value)
    publisher.publish(batch[0])  # the same event again, within SQS's deduplication window: delivered once

    received: list[dict[str, Any]] = []

    def drained() -> bool:
        got = sqs.receive_message(
            QueueUrl=topology.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageSystemAttributeNames=["All"]
        ).get("Messages", [])
        for message in got:
            received.append(message)
            sqs.delete_message(QueueUrl=topology.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return not got and len(received) >= 3

    wait_until(drained, timeout=20)
    seen = [
        (m["Attributes"]["MessageGroupId"], json.loads(json.loads(m["Body"])["Message"])["payload"]["seq"])
        for m in received
    ]
    assert sorted(seen) == [("a", 0), ("b", 0), ("b", 1)]
