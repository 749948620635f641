"""SQS unreachable for 20 s: the worker logs it, backs off without burning CPU, and resumes by itself (promise 8)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.faults import OutageProxy, tree_cpu_seconds
from tests.reliability_report import record_figures
from tests.support import make_topology, queue_depth, send_events, start_worker, wait_until

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 20
#: CPU the whole worker (main process and pool) may burn during the outage: a busy loop would use ~20 s.
CPU_BUDGET_SECONDS = 1.0


def test_worker_backs_off_during_an_sqs_outage_and_resumes_by_itself(
    sqs: Any, sns: Any, sns_sqs_endpoint: str, tmp_path: Path
) -> None:
    topology = make_topology(sns, sqs, f"outage-{uuid.uuid4().hex[:8]}", visibility=30, max_receive_count=10)
    upstream = urlsplit(sns_sqs_endpoint).port
    assert upstream is not None
    with OutageProxy(upstream) as proxy:
        worker = start_worker("tests.integration.worker_app", topology, proxy.url, tmp_path)
        try:
            run = uuid.uuid4().hex

            def handled() -> set[int]:
                return {r["payload"]["n"] for r in worker.records("doGood") if r["payload"].get("run") == run}

            send_events(sqs, topology.queue_url, "doGood", [{"run": run, "n": n} for n in range(10)])
            wait_until(lambda: len(handled()) == 10, timeout=30)

            proxy.down()
            cpu_before, started = tree_cpu_seconds(worker.process.pid), time.monotonic()
            # events keep arriving while the worker cannot reach SQS
            send_events(sqs, topology.queue_url, "doGood", [{"run": run, "n": n} for n in range(10, 30)])
            time.sleep(OUTAGE_SECONDS)
            cpu = tree_cpu_seconds(worker.process.pid) - cpu_before
            outage = time.monotonic() - started
            assert worker.process.poll() is None, f"the worker died during the outage:\n{worker.log()[-2000:]}"
            assert handled() == set(range(10)), "nothing can be handled while SQS is unreachable"

            proxy.up()
            back = time.monotonic()
            send_events(sqs, topology.queue_url, "doGood", [{"run": run, "n": n} for n in range(30, 40)])
            wait_until(lambda: set(range(30, 40)) <= handled(), timeout=30)
            resumed_after = time.monotonic() - back
            # a receive cut off mid-response leaves its messages invisible for the visibility timeout (30 s here),
            # on SQS as on the emulator: they come back after it, not lost
            wait_until(lambda: len(handled()) == 40, timeout=45)
            all_after = time.monotonic() - back
            wait_until(lambda: queue_depth(sqs, topology.queue_url) == 0, timeout=15)
            executions = len([r for r in worker.records("doGood") if r["payload"].get("run") == run])
            log = worker.log()
        finally:
            worker.stop()
    record_figures(
        8,
        "SQS endpoint down 20 s (40 events before, during, after)",
        sent=40,
        handled=len(handled()),
        duplicates=executions - len(handled()),
        lost=40 - len(handled()),
        outage_s=round(outage, 1),
        worker_cpu_s_during_outage=round(cpu, 2),
        new_events_handled_within_s=round(resumed_after, 1),
        all_handled_within_s=round(all_after, 1),
    )
    assert resumed_after < 10, "resumes within the backoff cap (5 s) plus a receive"
    assert cpu < CPU_BUDGET_SECONDS, f"{cpu:.2f} CPU seconds in a {outage:.0f} s outage: a busy loop"
    assert "cannot receive from SQS queue" in log, "the outage is logged"
    assert "reachable again after" in log, "the recovery is logged"
    assert log.count("cannot receive from SQS queue") == 1, "one line for the outage, not one per retry"
