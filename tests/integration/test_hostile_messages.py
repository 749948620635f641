"""One bad message never jams a worker (issue 9, items 1-3, 8, 10): each gets its own fate, the rest keep flowing.

A one-process worker (``-c 1``: a single held slot is the whole worker) receives, mixed with good events:

* valid events whose payload nests deeper than the decoder allows (through SNS, no raw delivery): before the depth
  limit the prefork pool failed to pickle the job, the error escaped the router and the message was held (and
  heartbeated) forever;
* bodies shaped like kombu messages (``{"properties": {}, "body": {...}}``), a task message whose ``task`` header is
  a list, and one whose ``body_encoding`` kombu cannot decode: before, the first two were held forever and the last
  failed the whole receive of ten, so every message in it went to the dead-letter queue by redrive, without a reason;
* forged task messages (a Celery built-in, an unregistered task, a task not accepted from the queue, an event task
  with an invalid payload).

Every good event must be handled, every bad message dead-lettered at first sight with an ``eventbus-reason``, and the
queue must drain.
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.reliability_report import record_figures
from tests.support import DeadLetters, Worker, make_topology, queue_depth, send_events, start_worker, wait_until

pytestmark = pytest.mark.integration

TOKEN = uuid.uuid4().hex + uuid.uuid4().hex


def handled_runs(worker: Worker, marker: str) -> set[int]:
    """The ``n`` of each ``doGood`` event of this run the worker handled."""
    return {r["payload"]["n"] for r in worker.records("doGood") if r["payload"].get("run") == marker}


def deep_event(levels: int, marker: str) -> str:
    nested = '{"a": ' * levels + "1" + "}" * levels
    return '{"metadata": {"eventName": "doGood"}, "payload": {"run": "' + marker + '", "deep": ' + nested + "}}"


def task_message(marker: str, headers: dict[str, Any], body: Any, **properties: Any) -> str:
    """A kombu-shaped SQS body, as Celery's producer writes one (base64 body inside kombu's JSON; the marker is in
    the task id, readable in the dead-letter queue)."""
    encoded = base64.b64encode(json.dumps(body).encode()).decode()
    return json.dumps(
        {
            "body": encoded,
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"lang": "py", "id": f"{marker}-{uuid.uuid4()}", **headers},
            "properties": {"body_encoding": "base64", "delivery_info": {}, **properties},
        }
    )


def hostile_bodies(marker: str) -> dict[str, str]:
    args = [[], {"marker": marker}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    event_kwargs = {"metadata": {"eventName": "doGood"}, "payload": "not an object", "marker": marker}
    return {
        "kombu-shaped, dict body": json.dumps({"properties": {}, "body": {"a": marker}}),
        "kombu-shaped, bogus encoding": json.dumps({"properties": {"body_encoding": "bogus"}, "body": marker}),
        "kombu-shaped, properties not an object": json.dumps({"properties": marker, "body": "x"}),
        "task header is a list": task_message(marker, {"task": ["tests.integration.worker_app.plain"]}, args),
        "celery built-in task": task_message(marker, {"task": "celery.backend_cleanup"}, args),
        # a retry of a renamed handler, carrying a secret: Celery's "Received unregistered task" line printed it whole
        "unregistered task": task_message(
            marker,
            {"task": "nobody.home"},
            [[], {"metadata": {"eventName": "x", "authorization": f"Bearer {TOKEN}"}, "payload": {}}, args[2]],
        ),
        "unsigned event task": task_message(
            marker, {"task": "tests.integration.worker_app.do_good"}, [[], event_kwargs, args[2]]
        ),
        "timelimit not a pair": task_message(
            marker, {"task": "tests.integration.worker_app.do_good", "timelimit": 5}, args
        ),
    }


def test_each_bad_message_gets_its_own_fate_and_good_events_keep_flowing(
    sqs: Any, sns: Any, sns_sqs_endpoint: str, tmp_path: Path
) -> None:
    topology = make_topology(sns, sqs, f"hostile-{uuid.uuid4().hex[:8]}", visibility=2, max_receive_count=3)
    worker = start_worker("tests.integration.worker_app", topology, sns_sqs_endpoint, tmp_path, "-c", "1")
    marker = uuid.uuid4().hex
    good = 20
    dead = DeadLetters(sqs, topology.dlq_url, marker)

    def handled() -> set[int]:
        return handled_runs(worker, marker)

    hostile = hostile_bodies(marker)
    deep_levels = (150, 500, 900)
    try:
        for levels in deep_levels:  # through SNS: the notification wrapper, as a producer would send them
            sns.publish(TopicArn=topology.topic_arn, Message=deep_event(levels, marker))
        send_events(sqs, topology.queue_url, "doGood", [{"run": marker, "n": n} for n in range(good // 2)])
        # one receive of ten carries every hostile body and two good events
        entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(hostile.values())]
        entries += [
            {"Id": f"g{n}", "MessageBody": json.dumps({"metadata": {"eventName": "doGood"}, "payload": p})}
            for n, p in ((n, {"run": marker, "n": n}) for n in range(good // 2, good // 2 + 2))
        ]
        for start in range(0, len(entries), 10):
            sqs.send_message_batch(QueueUrl=topology.queue_url, Entries=entries[start : start + 10])
        send_events(sqs, topology.queue_url, "doGood", [{"run": marker, "n": n} for n in range(good // 2 + 2, good)])

        wait_until(lambda: handled() == set(range(good)), timeout=40)
        expected_dead = len(hostile) + len(deep_levels)
        wait_until(lambda: len(dead.messages()) >= expected_dead, timeout=30)
        wait_until(lambda: queue_depth(sqs, topology.queue_url) == 0, timeout=20)
        alive = worker.process.poll() is None
        log = worker.log()
    finally:
        worker.stop()
    reasons = dead.reasons()
    record_figures(
        6,
        "hostile batch on a one-process worker: 3 too-deep events + 8 hostile bodies among 20 good events",
        sent=good + expected_dead,
        handled=len(handled()),
        duplicates=0,
        dead_lettered=len(dead.messages()),
        lost=good + expected_dead - len(handled()) - len(dead.messages()),
        dead_lettered_without_reason=sum(1 for r in reasons if not r),
        worker_alive=alive,
    )
    forged = [r for r in reasons if r.startswith(("unauthenticated-task", "unregistered-task"))]
    record_figures(
        9,
        "forged task messages on the queue: a Celery built-in, an unsigned event task, an unregistered task",
        sent=3,
        handled=0,
        duplicates=0,
        lost=0,
        dead_lettered_with_reason=len(forged),
        ran=0,
    )
    assert alive
    assert len(forged) == 3
    assert len(dead.messages()) == expected_dead, "each bad message dead-lettered once"
    assert all(reasons), f"every dead-lettered message says why: {reasons}"
    assert sum(r.startswith("too-deep") for r in reasons) == len(deep_levels)
    assert marker not in " ".join(reasons), "reasons name problems, never values"
    assert TOKEN not in log, "no refused message is printed"


def test_a_failed_hand_off_to_the_pool_settles_that_message_and_frees_its_slot(
    sqs: Any, sns: Any, sns_sqs_endpoint: str, tmp_path: Path
) -> None:
    """Before: the error escaped the router, the semaphore slot stayed taken, and a ``-c 1`` worker stopped."""
    from tests.integration.failing_pool import EXPLODE

    topology = make_topology(sns, sqs, f"handoff-{uuid.uuid4().hex[:8]}", visibility=2, max_receive_count=3)
    pool = {"CELERY_CUSTOM_WORKER_POOL": "tests.integration.failing_pool:TaskPool"}
    worker = start_worker(
        "tests.integration.worker_app", topology, sns_sqs_endpoint, tmp_path, "-c", "1", "-P", "custom", env=pool
    )
    marker = uuid.uuid4().hex
    good = 10
    dead = DeadLetters(sqs, topology.dlq_url, marker)

    def handled() -> set[int]:
        return handled_runs(worker, marker)

    try:
        payloads: list[dict[str, Any]] = [{"run": marker, "n": -1 - n, "x": EXPLODE} for n in range(3)]
        payloads += [{"run": marker, "n": n} for n in range(good)]
        send_events(sqs, topology.queue_url, "doGood", payloads)
        wait_until(lambda: handled() == set(range(good)), timeout=30)
        wait_until(lambda: len(dead.messages()) >= 3, timeout=20)
        wait_until(lambda: queue_depth(sqs, topology.queue_url) == 0, timeout=20)
        log = worker.log()
    finally:
        worker.stop()
    reasons = set(dead.reasons())
    record_figures(
        6,
        "hand-off to the pool fails for 3 of 13 events on a one-process worker",
        sent=3 + good,
        handled=len(handled()),
        duplicates=0,
        lost=3 + good - len(handled()) - len(dead.messages()),
        dead_lettered=len(dead.messages()),
    )
    assert len(dead.messages()) == 3
    assert reasons == {"handoff-failed: RecursionError"}
    assert log.count("failed on its way to a task (RecursionError); dead-lettering it") == 3
