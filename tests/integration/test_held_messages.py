"""A message the worker holds is never handed out twice by our own bookkeeping (issue 9, items 4, 5, 11, 15).

* A failed visibility extension (HTTP 500s on ``ChangeMessageVisibilityBatch``) is sent again before the message
  lapses: before, the deadline moved as if it had succeeded, the next extension came at or after expiry and the
  handler ran twice.
* A slow dead-letter copy (an 8 s ``SendMessage`` on a 4 s queue) does not stop the event loop: before, the heartbeat
  stopped, a running handler's message lapsed and ran again, and the malformed message was copied to the dead-letter
  queue twice.
* A queue with a 1 s visibility timeout still gets a heartbeat: before, timeouts under 2 s turned it off silently and
  a 4 s handler started four times.
* A task sent with a countdown far past the visibility timeout runs once, after its ETA, even when the worker holding
  it is restarted while it waits (stock Celery on SQS runs it once per visibility timeout).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.faults import FaultyHttpProxy
from tests.reliability_report import record_figures
from tests.support import DeadLetters, Worker, make_topology, queue_depth, start_worker, wait_until

pytestmark = pytest.mark.integration


def upstream_port(endpoint: str) -> int:
    return urlsplit(endpoint).port or 80


def send_sleepy(sqs: Any, url: str, marker: str, seconds: float) -> None:
    body = {"metadata": {"eventName": "sleepy"}, "payload": {"marker": marker, "seconds": seconds}}
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))


def starts(worker: Worker, marker: str) -> int:
    return len([r for r in worker.records("sleepy") if r["marker"] == marker])


def finished(worker: Worker, marker: str) -> bool:
    return any(r["marker"] == marker for r in worker.records("sleepyDone"))


def test_a_failed_visibility_extension_is_retried_before_the_message_lapses(
    sqs: Any, sns: Any, sns_sqs_endpoint: str, tmp_path: Path
) -> None:
    topology = make_topology(sns, sqs, f"hb500-{uuid.uuid4().hex[:8]}", visibility=6, max_receive_count=5)
    marker = uuid.uuid4().hex
    with FaultyHttpProxy(upstream_port(sns_sqs_endpoint)) as proxy:
        proxy.fail("ChangeMessageVisibilityBatch", times=2)  # the first extension, and its first retry
        worker = start_worker("tests.integration.worker_app", topology, proxy.url, tmp_path)
        try:
            send_sleepy(sqs, topology.queue_url, marker, 14)
            wait_until(lambda: finished(worker, marker), timeout=40)
            time.sleep(1)
            runs, extensions = starts(worker, marker), proxy.seen("ChangeMessageVisibilityBatch")
        finally:
            worker.stop()
    record_figures(
        2,
        "first two visibility extension calls fail with HTTP 500 (6 s visibility, 14 s handler)",
        sent=1,
        handled=1,
        duplicates=runs - 1,
        lost=0,
        extension_calls=extensions,
    )
    assert extensions >= 3, "the failed extension was sent again"
    assert runs == 1, "SQS never handed the running event out again"


def test_a_slow_dead_letter_copy_does_not_stop_the_event_loop(
    sqs: Any, sns: Any, sns_sqs_endpoint: str, tmp_path: Path
) -> None:
    topology = make_topology(sns, sqs, f"slowdlq-{uuid.uuid4().hex[:8]}", visibility=4, max_receive_count=5)
    marker = uuid.uuid4().hex
    with FaultyHttpProxy(upstream_port(sns_sqs_endpoint)) as proxy:
        proxy.delay("SendMessage", 8, times=1)  # the dead-letter copy, twice the visibility timeout
        worker = start_worker("tests.integration.worker_app", topology, proxy.url, tmp_path)
        try:
            send_sleepy(sqs, topology.queue_url, marker, 11)
            wait_until(lambda: starts(worker, marker), timeout=20)
            sqs.send_message(QueueUrl=topology.queue_url, MessageBody=f"not json {marker}")
            wait_until(lambda: finished(worker, marker), timeout=40)
            time.sleep(1)
            dead = DeadLetters(sqs, topology.dlq_url, marker)
            copies = max(len(dead.messages()) for _ in range(5))
            runs = starts(worker, marker)
            wait_until(lambda: queue_depth(sqs, topology.queue_url) == 0, timeout=20)
        finally:
            worker.stop()
    record_figures(
        6,
        "dead-letter copy takes 8 s while an 11 s handler runs (4 s visibility)",
        sent=2,
        handled=1,
        duplicates=runs - 1 + max(copies - 1, 0),
        lost=0,
        dead_letter_copies=copies,
    )
    assert runs == 1, "the running handler's message was extended while the copy was slow"
    assert copies == 1, "the malformed message was copied to the dead-letter queue once"


def test_a_one_second_visibility_timeout_still_gets_a_heartbeat(
    sqs: Any, sns: Any, sns_sqs_endpoint: str, tmp_path: Path
) -> None:
    topology = make_topology(sns, sqs, f"vis1-{uuid.uuid4().hex[:8]}", visibility=1, max_receive_count=10)
    marker = uuid.uuid4().hex
    worker = start_worker("tests.integration.worker_app", topology, sns_sqs_endpoint, tmp_path)
    try:
        send_sleepy(sqs, topology.queue_url, marker, 4)
        wait_until(lambda: finished(worker, marker), timeout=30)
        time.sleep(2)
        runs = starts(worker, marker)
    finally:
        worker.stop()
    record_figures(2, "1 s visibility, 4 s handler", sent=1, handled=1, duplicates=runs - 1, lost=0)
    assert runs == 1


def test_a_countdown_far_past_the_visibility_timeout_runs_once_after_its_eta_across_a_restart(
    sqs: Any, sns: Any, sns_sqs_endpoint: str, tmp_path: Path
) -> None:
    from eventbus.celery import celery_config
    from eventbus.settings import EventBusSettings
    from tests.integration import worker_app

    topology = make_topology(sns, sqs, f"eta-{uuid.uuid4().hex[:8]}", visibility=2, max_receive_count=10)
    worker_app.app.conf.update(
        celery_config(EventBusSettings(endpoint_url=sns_sqs_endpoint, queue_name=topology.queue_name))
    )
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
    first = start_worker("tests.integration.worker_app", topology, sns_sqs_endpoint, tmp_path / "first")
    marker = uuid.uuid4().hex
    countdown = 10
    sent_at = time.time()
    worker_app.later.apply_async((marker,), countdown=countdown)
    try:
        wait_until(lambda: "later" in first.log() and "received" in first.log(), timeout=20)
        time.sleep(4)  # held for twice its visibility timeout
    finally:
        first.stop()
    assert not first.records("later"), "not run before its ETA"
    second = start_worker("tests.integration.worker_app", topology, sns_sqs_endpoint, tmp_path / "second")
    try:
        wait_until(lambda: second.records("later"), timeout=countdown + 15)
        time.sleep(3)  # a copy handed out by SQS would run within one visibility timeout
        runs = [r for r in second.records("later") if r["marker"] == marker]
    finally:
        second.stop()
    record_figures(
        10,
        "countdown 10 s on a 2 s visibility queue, worker restarted while it waits",
        sent=1,
        handled=len(runs),
        duplicates=max(len(runs) - 1, 0),
        lost=0 if runs else 1,
        ran_after_eta_s=round(runs[0]["at"] - sent_at - countdown, 1) if runs else None,
    )
    assert len(runs) == 1
    assert runs[0]["at"] >= sent_at + countdown - 0.5, "not before its ETA"


def test_an_event_that_failed_after_its_retries_is_not_deleted_from_a_queue_without_redrive(
    sqs: Any, sns_sqs_endpoint: str, tmp_path: Path
) -> None:
    """Before: the reject path was installed on first deliveries only, so the retry message's final failure deleted
    it (kombu deletes a rejected message when its queue has no redrive policy)."""
    from tests.support import Topology

    name = f"noredrive-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "2"})["QueueUrl"]
    worker = start_worker(
        "tests.integration.worker_app",
        Topology("", name, url, ""),
        sns_sqs_endpoint,
        tmp_path,
        env={"EVENTBUS_STARTUP_CHECKS": "warn"},  # a queue without redrive on purpose: the start-up check would refuse
    )
    marker = uuid.uuid4().hex
    try:
        body = {"metadata": {"eventName": "retriesThenFails"}, "payload": {"marker": marker}}
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))

        def final_attempts() -> int:
            return len([r for r in worker.records("retriesThenFails") if r["marker"] == marker and r["retries"] == 1])

        wait_until(final_attempts, timeout=20)
        # the failed retry message is left for redelivery: it comes back after its visibility timeout
        wait_until(lambda: final_attempts() >= 2, timeout=15)
    finally:
        worker.stop()
