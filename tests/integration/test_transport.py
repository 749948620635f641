"""eventbus's SQS transport in a real worker: batched deletes lose nothing and duplicate nothing."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.support import Worker, wait_until

pytestmark = pytest.mark.integration


def depth(sqs: Any, url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


def test_events_and_tasks_on_one_queue_are_each_handled_exactly_once(sqs: Any, worker: Worker) -> None:
    from eventbus.celery import celery_config
    from eventbus.settings import EventBusSettings
    from tests.integration import worker_app

    worker_app.app.conf.update(
        celery_config(EventBusSettings(endpoint_url=worker.endpoint, queue_name=worker.topology.queue_name))
    )
    marker = uuid.uuid4().hex
    for start in range(0, 200, 10):
        entries = [
            {
                "Id": str(i),
                "MessageBody": json.dumps({"metadata": {"eventName": "doGood"}, "payload": {"m": f"{marker}-{i}"}}),
            }
            for i in range(start, start + 10)
        ]
        sqs.send_message_batch(QueueUrl=worker.topology.queue_url, Entries=entries)
    with worker_app.app.producer_or_acquire() as producer:
        for i in range(200):
            worker_app.plain.apply_async((f"{marker}-{i}",), producer=producer)

    def mine() -> tuple[list[str], list[str]]:
        events = [
            r["payload"]["m"] for r in worker.records("doGood") if str(r["payload"].get("m", "")).startswith(marker)
        ]
        tasks = [r["token"] for r in worker.records("plain") if r["token"].startswith(marker)]
        return events, tasks

    wait_until(lambda: len(mine()[0]) >= 200 and len(mine()[1]) >= 200, timeout=120)
    # the visibility timeout is 1 s: an undeleted message would be handled again within it
    wait_until(lambda: depth(sqs, worker.topology.queue_url) == 0, timeout=10)
    import time

    time.sleep(2.5)
    events, tasks = mine()
    assert sorted(events) == sorted(f"{marker}-{i}" for i in range(200))
    assert sorted(tasks) == sorted(f"{marker}-{i}" for i in range(200))
    assert depth(sqs, worker.topology.queue_url) == 0


def test_warm_shutdown_flushes_buffered_deletes(sns: Any, sqs: Any, sns_sqs_endpoint: str, tmp_path: Any) -> None:
    from tests.support import make_topology, start_worker

    # 5 s visibility: longer than handling plus shutdown (with 1 s, SQS could redeliver before the flush)
    topology = make_topology(sns, sqs, f"flush-{uuid.uuid4().hex[:8]}", visibility=5)
    # a long flush interval: only the shutdown flush can delete these in time
    running = start_worker(
        "tests.integration.worker_app",
        topology,
        sns_sqs_endpoint,
        tmp_path,
        env={"EVENTBUS_ACK_FLUSH_INTERVAL": "30", "EVENTBUS_ACK_BATCH_SIZE": "10"},
    )
    try:
        for i in range(3):  # fewer than a batch: nothing is sent before the flush interval
            body = json.dumps({"metadata": {"eventName": "doGood"}, "payload": {"n": i}})
            sqs.send_message(QueueUrl=topology.queue_url, MessageBody=body)
        wait_until(lambda: len(running.records("doGood")) >= 3, timeout=30)
    finally:
        running.stop()
    import time

    time.sleep(6)  # past the 5 s visibility timeout: undeleted messages would be visible again
    assert depth(sqs, topology.queue_url) == 0
    assert len(running.records("doGood")) == 3
