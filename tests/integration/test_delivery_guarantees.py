"""Nothing lost, nothing stuck: real workers killed, slowed down and shut down while they hold messages.

Promises 1-3 of docs/reliability.md: ``kill -9`` of the main process or of a pool child loses no event; a handler
slower than the visibility timeout runs once although a second worker polls the queue; a warm shutdown finishes what
runs and hands what never started to another worker at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Seen
from tests.reliability_report import record_figures
from tests.support import Worker, make_topology, pool_children, queue_depth, send_events, start_worker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

APP = "tests.integration.reliability_app"
EVENTS = 200


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    """Workers a test starts; all stopped (or killed) at the end."""
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


def launch(
    started: list[Worker], topology: Any, endpoint: str, tmp: Path, *extra: str, env: dict[str, str] | None = None
) -> Worker:
    tmp.mkdir(parents=True, exist_ok=True)
    worker = start_worker(APP, topology, endpoint, tmp, *extra, env=env)
    started.append(worker)
    return worker


def kill_tree(worker: Worker) -> None:
    """SIGKILL the worker's main process and, once orphaned, its pool (same process group)."""
    os.kill(worker.process.pid, signal.SIGKILL)
    worker.process.wait()
    time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.process.pid, signal.SIGKILL)


def crash_run(
    sqs: Any,
    sns: Any,
    endpoint: str,
    tmp: Path,
    seen: Seen,
    started: list[Worker],
    postgres_url: str,
    crash: Callable[[Worker], int],
) -> dict[str, int]:
    """Send EVENTS events, let a worker handle some, apply ``crash``, restart if needed, wait until all are handled."""
    topology = make_topology(sns, sqs, f"crash-{uuid.uuid4().hex[:8]}", visibility=5, max_receive_count=20)
    env = {"EVENTBUS_TEST_POSTGRES_URL": postgres_url}
    first = launch(started, topology, endpoint, tmp / "first", env=env)
    send_events(sqs, topology.queue_url, "seen", [{"run": seen.run, "n": n, "sleep": 0.05} for n in range(EVENTS)])
    wait_until(lambda: seen.distinct() >= EVENTS // 4, timeout=60)
    handled_before = seen.distinct()
    crashes = crash(first)
    if first.process.poll() is not None:
        launch(started, topology, endpoint, tmp / "second", env=env)
    wait_until(lambda: seen.distinct() == EVENTS, timeout=90)
    time.sleep(6)  # one visibility timeout more: a message left undeleted would run again now
    executions, distinct = seen.executions(), seen.distinct()
    assert distinct == EVENTS, f"{EVENTS - distinct} event(s) lost"
    wait_until(lambda: queue_depth(sqs, topology.queue_url) == 0, timeout=15)
    return {
        "sent": EVENTS,
        "handled": distinct,
        "duplicates": executions - distinct,
        "lost": EVENTS - distinct,
        "handled_before_crash": handled_before,
        "kills": crashes,
    }


def test_kill_9_of_the_main_process_loses_no_event(
    sqs: Any, sns: Any, sns_sqs_endpoint: str, tmp_path: Path, seen: Seen, workers: list[Worker], postgres_url: str
) -> None:
    def crash(worker: Worker) -> int:
        kill_tree(worker)  # in-flight and prefetched messages are held by a dead process
        return 1

    figures = crash_run(sqs, sns, sns_sqs_endpoint, tmp_path, seen, workers, postgres_url, crash)
    record_figures(1, "kill -9 main process (200 events, restart)", **figures)


def test_kill_9_of_pool_children_loses_no_event(
    sqs: Any, sns: Any, sns_sqs_endpoint: str, tmp_path: Path, seen: Seen, workers: list[Worker], postgres_url: str
) -> None:
    def crash(worker: Worker) -> int:
        kills = 0
        for _ in range(3):  # a child mid-task each time; billiard replaces it, the worker goes on
            children = pool_children(worker.process.pid)
            if children:
                os.kill(children[0], signal.SIGKILL)
                kills += 1
            time.sleep(0.7)
        assert worker.process.poll() is None, "the main process must survive its children"
        return kills

    figures = crash_run(sqs, sns, sns_sqs_endpoint, tmp_path, seen, workers, postgres_url, crash)
    assert figures["kills"] >= 1
    record_figures(1, "kill -9 pool children (200 events, 3 kills)", **figures)


def slow_records(*workers: Worker) -> list[dict[str, Any]]:
    return [row for worker in workers for row in worker.records() if row["kind"].startswith("slow")]


def test_a_handler_slower_than_the_visibility_timeout_runs_once(
    sqs: Any, sns: Any, sns_sqs_endpoint: str, tmp_path: Path, workers: list[Worker]
) -> None:
    topology = make_topology(sns, sqs, f"beat-{uuid.uuid4().hex[:8]}", visibility=3, max_receive_count=10)
    first = launch(workers, topology, sns_sqs_endpoint, tmp_path / "first", "-c", "1")
    # 1 runs 10 s; 2 waits ~10 s for the only pool slot, prefetched: both outlive the 3 s visibility timeout
    send_events(sqs, topology.queue_url, "slow", [{"n": 1, "seconds": 10}, {"n": 2, "seconds": 2}])
    wait_until(lambda: [r for r in slow_records(first) if r["kind"] == "slow-start"], timeout=20)
    time.sleep(0.5)
    second = launch(workers, topology, sns_sqs_endpoint, tmp_path / "second", "-c", "1")
    wait_until(lambda: len([r for r in slow_records(first, second) if r["kind"] == "slow-end"]) >= 2, timeout=40)
    time.sleep(4)  # past another visibility timeout: a message still in the queue would start again now
    starts = [r for r in slow_records(first, second) if r["kind"] == "slow-start"]
    by_second = [r for r in starts if r in slow_records(second)]
    record_figures(
        2,
        "3 s visibility, 10 s handler + 1 prefetched, 2 workers",
        sent=2,
        handled=len({r["n"] for r in starts}),
        duplicates=len(starts) - len({r["n"] for r in starts}),
        lost=2 - len({r["n"] for r in starts}),
        executions_on_second_worker=len(by_second),
    )
    assert sorted(r["n"] for r in starts) == [1, 2], "each event exactly once"
    assert by_second == [], "the second worker never got a message the first one held"
    assert queue_depth(sqs, topology.queue_url) == 0


def test_warm_shutdown_finishes_running_tasks_and_releases_prefetched_ones_at_once(
    sqs: Any, sns: Any, sns_sqs_endpoint: str, tmp_path: Path, workers: list[Worker]
) -> None:
    # 30 s visibility: without the release, the prefetched messages would wait that long for the second worker
    topology = make_topology(sns, sqs, f"term-{uuid.uuid4().hex[:8]}", visibility=30, max_receive_count=10)
    first = launch(workers, topology, sns_sqs_endpoint, tmp_path / "first", "-c", "1")
    # one long task runs; five short ones wait behind it for the only pool process
    send_events(sqs, topology.queue_url, "slow", [{"n": 0, "seconds": 6}])
    wait_until(lambda: [r for r in slow_records(first) if r["kind"] == "slow-start"], timeout=20)
    send_events(sqs, topology.queue_url, "slow", [{"n": n, "seconds": 1} for n in range(1, 6)])
    wait_until(lambda: first.log().count("received") >= 6, timeout=10)  # all six held: one running, five waiting
    second = launch(workers, topology, sns_sqs_endpoint, tmp_path / "second", "-c", "1")
    assert slow_records(second) == []
    signalled = time.time()
    os.kill(first.process.pid, signal.SIGTERM)  # warm shutdown, main process only
    first.process.wait(timeout=30)
    wait_until(lambda: len([r for r in slow_records(first, second) if r["kind"] == "slow-end"]) >= 6, timeout=60)
    starts = [r for r in slow_records(first, second) if r["kind"] == "slow-start"]
    on_first = [r for r in slow_records(first) if r["kind"] == "slow-start"]
    ends_on_first = [r for r in slow_records(first) if r["kind"] == "slow-end"]
    picked_up = min(r["at"] for r in slow_records(second) if r["kind"] == "slow-start") - signalled
    record_figures(
        3,
        "SIGTERM with 1 running (6 s) + 5 prefetched (30 s visibility)",
        sent=6,
        handled=len({r["n"] for r in starts}),
        duplicates=len(starts) - len({r["n"] for r in starts}),
        lost=6 - len({r["n"] for r in starts}),
        finished_by_first=len(ends_on_first),
        second_worker_started_after_s=round(picked_up, 2),
    )
    assert sorted(r["n"] for r in starts) == list(range(6)), "each event exactly once"
    assert len(ends_on_first) == len(on_first), "what ran on the first worker finished there"
    # released at the SIGTERM, not when the running 6 s task ends (nor after the 30 s visibility timeout)
    assert picked_up < 3, f"released messages reached the second worker after {picked_up:.1f}s"
    assert "released 5 prefetched message(s) that had not started" in first.log()
    wait_until(lambda: queue_depth(sqs, topology.queue_url) == 0, timeout=15)
