"""A worker on Celery's thread pool (``-P threads``, the pool docs/performance.md recommends for I/O-bound handlers):
handlers run on pool threads while the event loop runs on the main thread, and every handled event must still be
deleted from SQS exactly once (no lost delete, no duplicate, no error in the worker's log)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Seen
from tests.support import make_topology, queue_depth, send_events, start_worker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

EVENTS = 300


def test_a_thread_pool_worker_handles_and_deletes_every_event_once(
    sqs: Any, sns: Any, sns_sqs_endpoint: str, tmp_path: Path, seen: Seen, postgres_url: str
) -> None:
    topology = make_topology(sns, sqs, f"threads-{uuid.uuid4().hex[:8]}", visibility=5, max_receive_count=20)
    env = {"EVENTBUS_TEST_POSTGRES_URL": postgres_url}
    worker = start_worker(
        "tests.integration.reliability_app", topology, sns_sqs_endpoint, tmp_path, "-P", "threads", "-c", "8", env=env
    )
    try:
        # handlers of different lengths: they finish, and are acknowledged, at any moment of the event loop
        events = [{"run": seen.run, "n": n, "sleep": (n % 7) * 0.002} for n in range(EVENTS)]
        send_events(sqs, topology.queue_url, "seen", events)
        wait_until(lambda: seen.distinct() == EVENTS, timeout=120)
        time.sleep(6)  # one visibility timeout more: a message whose delete was lost would run again now
        assert seen.executions() == EVENTS, f"{seen.executions() - EVENTS} event(s) handled twice"
        wait_until(lambda: queue_depth(sqs, topology.queue_url) == 0, timeout=15)
    finally:
        worker.stop()
    log = worker.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
    assert "ERROR" not in log, log[-3000:]
