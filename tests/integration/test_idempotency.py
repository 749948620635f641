"""The idempotent consumer in a real worker: one event delivered 5 times runs its handler once (promise 4).

The five deliveries are five SQS messages carrying the same SNS notification (what SNS's at-least-once delivery
produces), sent at once to a worker with two pool processes, so duplicates also arrive while the first one runs.
Run once per deduplication store: Redis, SQLAlchemy on PostgreSQL, Django on PostgreSQL.

A handler that outlives its message's visibility (the heartbeat failing) and its claim's lease is redelivered while
it runs: the copy must be left for later, not run alongside, whichever SQS message it is.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Seen
from tests.reliability_report import record_figures
from tests.support import make_topology, queue_depth, start_worker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

DELIVERIES = 5


def notification(topic_arn: str, sns_id: str, event: str, payload: dict[str, Any]) -> str:
    """An SNS notification as SNS puts it on an SQS queue (raw delivery off)."""
    envelope = {"metadata": {"eventName": event, "publisherName": "itest"}, "payload": payload}
    return json.dumps(
        {"Type": "Notification", "MessageId": sns_id, "TopicArn": topic_arn, "Message": json.dumps(envelope)}
    )


def store_env(store: str, postgres_url: str, redis_url: str) -> dict[str, str]:
    env = {"EVENTBUS_DEDUP_STORE": store, "EVENTBUS_TEST_POSTGRES_URL": postgres_url}
    if store == "redis":
        env["EVENTBUS_REDIS_URL"] = redis_url
    elif store == "sqlalchemy":
        from sqlalchemy import create_engine

        from eventbus.adapters.sqlalchemy.tables import metadata

        url = postgres_url.replace("postgresql://", "postgresql+psycopg://")
        engine = create_engine(url)
        metadata.tables["eventbus_dedup"].create(engine, checkfirst=True)
        engine.dispose()
        env["EVENTBUS_DATABASE_URL"] = url
    else:
        import os

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django_project.settings")
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", database="postgres", verbosity=0)
        env["EVENTBUS_DJANGO_DATABASE"] = "postgres"
    return env


@pytest.mark.parametrize("store", ["redis", "sqlalchemy", "django"])
def test_one_event_delivered_five_times_runs_once(
    store: str,
    sqs: Any,
    sns: Any,
    sns_sqs_endpoint: str,
    tmp_path: Path,
    seen: Seen,
    postgres_url: str,
    redis_url: str,
) -> None:
    topology = make_topology(sns, sqs, f"once-{uuid.uuid4().hex[:8]}", visibility=2, max_receive_count=10)
    env = store_env(store, postgres_url, redis_url)
    worker = start_worker("tests.integration.reliability_app", topology, sns_sqs_endpoint, tmp_path, env=env)
    try:
        body = notification(topology.topic_arn, str(uuid.uuid4()), "once", {"run": seen.run, "n": 1, "sleep": 1})
        for _ in range(DELIVERIES):
            sqs.send_message(QueueUrl=topology.queue_url, MessageBody=body)
        wait_until(lambda: seen.executions() >= 1, timeout=30)
        # every delivery is settled: acknowledged as a duplicate, or deferred and then acknowledged
        wait_until(lambda: queue_depth(sqs, topology.queue_url) == 0, timeout=40)
        time.sleep(2.5)  # one visibility timeout more: a deferred copy would run now if it could
        executions = seen.executions()
        log = worker.log()
    finally:
        worker.stop()
    skipped = log.count("was handled already")
    deferred = log.count("is being handled by another delivery")
    record_figures(
        4,
        f"one event delivered 5 times ({store} store)",
        sent=DELIVERIES,
        handled=min(executions, 1),
        duplicates=executions - 1,
        lost=1 - min(executions, 1),
        duplicates_acknowledged_unrun=skipped,
        deferred_while_running=deferred,
    )
    assert executions == 1, f"{executions} executions for one event"
    assert skipped >= DELIVERIES - 1 - deferred
    dead = sqs.receive_message(QueueUrl=topology.dlq_url, MaxNumberOfMessages=10).get("Messages", [])
    assert dead == [], "duplicates are acknowledged, not dead-lettered"


def test_a_duplicate_of_an_event_that_needed_a_retry_is_still_recognised(
    sqs: Any, sns: Any, sns_sqs_endpoint: str, tmp_path: Path, seen: Seen, postgres_url: str, redis_url: str
) -> None:
    topology = make_topology(sns, sqs, f"retry-{uuid.uuid4().hex[:8]}", visibility=2, max_receive_count=10)
    worker = start_worker(
        "tests.integration.reliability_app",
        topology,
        sns_sqs_endpoint,
        tmp_path,
        env=store_env("redis", postgres_url, redis_url),
    )
    try:
        body = notification(topology.topic_arn, str(uuid.uuid4()), "onceAfterRetry", {"run": seen.run, "n": 1})
        sqs.send_message(QueueUrl=topology.queue_url, MessageBody=body)
        wait_until(lambda: seen.executions() >= 1, timeout=30)
        assert "retry" in worker.log().lower()
        sqs.send_message(QueueUrl=topology.queue_url, MessageBody=body)  # SNS delivers the event once more, late
        wait_until(lambda: "was handled already" in worker.log(), timeout=20)
        wait_until(lambda: queue_depth(sqs, topology.queue_url) == 0, timeout=20)
        executions = seen.executions()
    finally:
        worker.stop()
    assert executions == 1


#: The handler runs this long: longer than the queue's visibility timeout (2 s) and than the claim's lease.
LONG_RUN = 7.0
#: The claim's lease in this worker: the handler outlives it, so only its renewals keep the claim.
SHORT_LEASE = 3.0


# one store: the fix (an owner per execution, renewed while it runs) is the core's; the contract suite
# (eventbus.testing.contracts.DeduplicationStoreContract) proves renewal and refusal for every store
@pytest.mark.parametrize("store", ["redis"])
def test_a_redelivery_while_the_handler_still_runs_does_not_run_it_again(
    store: str, sqs: Any, sns: Any, sns_sqs_endpoint: str, tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    # no heartbeat (as when ChangeMessageVisibilityBatch fails): SQS redelivers the running message every 2 s
    topology = make_topology(sns, sqs, f"live-{uuid.uuid4().hex[:8]}", visibility=2, max_receive_count=10)
    env = {
        **store_env(store, postgres_url, redis_url),
        "EVENTBUS_HEARTBEAT": "false",
        "EVENTBUS_DEDUP_LEASE": str(SHORT_LEASE),
    }
    worker = start_worker("tests.integration.reliability_app", topology, sns_sqs_endpoint, tmp_path, env=env)
    try:
        body = notification(topology.topic_arn, str(uuid.uuid4()), "longOnce", {"seconds": LONG_RUN})
        sqs.send_message(QueueUrl=topology.queue_url, MessageBody=body)
        wait_until(lambda: worker.records("long-once-end"), timeout=30)
        wait_until(lambda: queue_depth(sqs, topology.queue_url) == 0, timeout=20)
        time.sleep(2.5)  # one visibility timeout more: a deferred copy would start now if it could
        starts = worker.records("long-once-start")
        log = worker.log()
    finally:
        worker.stop()
    deferred = log.count("is being handled by another delivery")
    record_figures(
        4,
        f"redelivered while running: {LONG_RUN:.0f} s handler, 2 s visibility, no heartbeat, "
        f"{SHORT_LEASE:.0f} s lease ({store} store)",
        sent=1,
        handled=min(len(starts), 1),
        duplicates=max(len(starts) - 1, 0),
        lost=1 - min(len(starts), 1),
        deferred_while_running=deferred,
    )
    assert len(starts) == 1, f"{len(starts)} executions started for one event"
    assert deferred >= 1, "SQS did not redeliver the event while it ran: the test proved nothing"
    assert "could not renew" not in log, "every renewal reached the store"
    assert "lost the claim" not in log
