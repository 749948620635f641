"""Poison and hostile input in a real worker (promise 6, end to end).

An event whose handler fails every time is retried once per visibility timeout and reaches the dead-letter queue
after ``maxReceiveCount`` receives, while good events sent before, during and after keep being handled. Hostile
bodies (garbage, a string at the size limit, deep nesting, wrong types) are dead-lettered at first sight with
their reason; the worker never dies.
"""

from __future__ import annotations

import json
import random
import string
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.reliability_report import record_figures
from tests.support import make_topology, queue_depth, send_events, start_worker, wait_until

pytestmark = pytest.mark.integration

MAX_RECEIVES = 3
VISIBILITY = 2
GOOD = 60
#: The worker's body size limit: under what any SQS queue takes (1 MiB, 256 KiB on a queue left at the former
#: default), so the oversized body reaches the worker; over the 100 KB deep-nesting body, which must reach the parser.
WORKER_MAX_MESSAGE_BYTES = 200_000


def hostile_bodies(marker: str) -> dict[str, str]:
    rng = random.Random(7)
    # only characters SQS accepts (#x9, #xA, #xD, #x20-#xD7FF, ...): string.printable also has \x0b and \x0c
    accepted = string.printable.replace("\x0b", "").replace("\x0c", "")
    garbage = "".join(rng.choice(accepted) for _ in range(2_000))
    nested = "[" * 50_000 + "]" * 50_000
    return {
        "garbage": f"{marker}{garbage}",
        # just over the worker's EVENTBUS_MAX_MESSAGE_BYTES, which is under what SQS takes
        "oversized": json.dumps(
            {"metadata": {"eventName": "doGood"}, "payload": {"m": marker, "s": "z" * WORKER_MAX_MESSAGE_BYTES}}
        ),
        "deep-nesting": '{"metadata": {"eventName": "doGood", "m": "'
        + marker
        + '"}, "payload": {"d": '
        + nested
        + "}}",
        "wrong-types": json.dumps(
            {"metadata": {"eventName": ["doGood"], "publishDate": 5, "m": marker}, "payload": {"m": marker}}
        ),
        "not-an-object": json.dumps([marker, {"metadata": {}}]),
    }


def test_poison_reaches_the_dead_letter_queue_while_good_events_keep_flowing(
    sqs: Any, sns: Any, sns_sqs_endpoint: str, tmp_path: Path
) -> None:
    topology = make_topology(
        sns, sqs, f"poison-{uuid.uuid4().hex[:8]}", visibility=VISIBILITY, max_receive_count=MAX_RECEIVES
    )
    env = {"EVENTBUS_MAX_MESSAGE_BYTES": str(WORKER_MAX_MESSAGE_BYTES)}
    worker = start_worker("tests.integration.worker_app", topology, sns_sqs_endpoint, tmp_path, env=env)
    marker = uuid.uuid4().hex
    try:
        poison = json.dumps({"metadata": {"eventName": "alwaysFails"}, "payload": {"marker": marker}})
        sqs.send_message(QueueUrl=topology.queue_url, MessageBody=poison)
        hostile = hostile_bodies(marker)
        for body in hostile.values():
            sqs.send_message(QueueUrl=topology.queue_url, MessageBody=body)
        # huge but valid (just under the limit): handled like any event
        huge = {"run": f"{marker}-huge", "n": 0, "s": "z" * (WORKER_MAX_MESSAGE_BYTES - 1_000)}
        send_events(sqs, topology.queue_url, "doGood", [huge])
        # good events trickle in over the poison's whole life (MAX_RECEIVES visibility timeouts)
        started = time.monotonic()
        for n in range(GOOD):
            send_events(sqs, topology.queue_url, "doGood", [{"run": marker, "n": n}])
            time.sleep(MAX_RECEIVES * VISIBILITY / GOOD)

        def good() -> list[dict[str, Any]]:
            return [r for r in worker.records("doGood") if r["payload"].get("run") == marker]

        def dead() -> list[dict[str, Any]]:
            response = sqs.receive_message(
                QueueUrl=topology.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=30
            )
            collected.extend(response.get("Messages", []))
            return collected

        collected: list[dict[str, Any]] = []
        wait_until(lambda: len(good()) >= GOOD, timeout=60)
        wait_until(lambda: [r for r in worker.records("doGood") if r["payload"].get("run") == f"{marker}-huge"])
        wait_until(lambda: any(marker in m["Body"] and "alwaysFails" in m["Body"] for m in dead()), timeout=60)
        poison_dead = True
        poisoned_after = time.monotonic() - started
        wait_until(lambda: len([m for m in dead() if marker in m["Body"]]) >= 1 + len(hostile), timeout=30)
        attempts = [r for r in worker.records("alwaysFails") if r["marker"] == marker]
        wait_until(lambda: queue_depth(sqs, topology.queue_url) == 0, timeout=20)
        alive = worker.process.poll() is None
        log = worker.log()
        records = worker.records("doGood")
    finally:
        worker.stop()
    reasons_by_body = {
        m["Body"][:80]: m["MessageAttributes"]["eventbus-reason"]["StringValue"].split(":")[0]
        for m in collected
        if marker in m["Body"] and "eventbus-reason" in m.get("MessageAttributes", {})
    }
    reasons = set(reasons_by_body.values())
    handled = {r["payload"]["n"] for r in good()}
    huge_handled = len([r for r in records if r["payload"].get("run") == f"{marker}-huge"])
    dead_lettered = len(reasons_by_body) + (1 if poison_dead else 0)
    record_figures(
        6,
        "poison event + 5 hostile bodies + 1 huge valid event among 60 good events",
        sent=GOOD + 2 + len(hostile),
        handled=len(handled) + min(huge_handled, 1),
        duplicates=len(good()) - len(handled) + max(huge_handled - 1, 0),
        dead_lettered=dead_lettered,
        lost=GOOD + 2 + len(hostile) - len(handled) - min(huge_handled, 1) - dead_lettered,
        poison_attempts=len(attempts),
        poison_dead_lettered_after_s=round(poisoned_after, 1),
        hostile_dead_lettered_at_once_with_reason=len(reasons_by_body),
        worker_alive=alive,
    )
    assert alive
    assert handled == set(range(GOOD)), "good events kept flowing"
    assert len(attempts) == MAX_RECEIVES, "one attempt per receive, no hot loop"
    assert reasons == {"malformed-json", "oversized", "invalid-metadata", "not-an-envelope"}
    assert len(reasons_by_body) == len(hostile), "each hostile body dead-lettered at once, with its reason"
    assert "Traceback" not in log.split("alwaysFails")[0], "no crash before the poison's own failures"
