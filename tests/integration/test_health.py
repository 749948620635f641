"""Worker health with real workers on the emulator: the health file and ``eventbus health`` through a worker's life.

Ready only once consuming, healthy while it consumes, unhealthy while its event loop is stuck or SQS is unreachable
(the outage technique of test_outage.py: a proxy taken down), healthy again after, and gone after a warm shutdown.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from eventbus.cli_health import check_health
from tests.faults import OutageProxy
from tests.support import ROOT, make_topology, send_events, start_worker, wait_until

pytestmark = pytest.mark.integration

INTERVAL = 0.5
#: ``eventbus health``'s default: three intervals.
MAX_AGE = 3 * INTERVAL


def health_env(path: Path) -> dict[str, str]:
    return {
        "EVENTBUS_HEALTH_FILE": str(path),
        "EVENTBUS_HEALTH_INTERVAL": str(INTERVAL),
        "EVENTBUS_OUTAGE_BACKOFF_MAX": "1",
    }


def probe(path: Path) -> tuple[int, str]:
    """``eventbus health --file path`` as a container platform runs it: its exit status and its one line."""
    result = subprocess.run(
        [sys.executable, "-m", "eventbus.cli", "health", "--file", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return result.returncode, result.stdout + result.stderr


def healthy(path: Path) -> bool:
    return check_health(str(path))[0]


def test_the_health_file_follows_the_worker_through_a_stuck_loop_an_outage_and_shutdown(
    sqs: Any, sns: Any, sns_sqs_endpoint: str, tmp_path: Path
) -> None:
    topology = make_topology(sns, sqs, f"health-{uuid.uuid4().hex[:8]}", visibility=30, max_receive_count=10)
    path = tmp_path / "health.json"
    upstream = urlsplit(sns_sqs_endpoint).port
    assert upstream is not None
    with OutageProxy(upstream) as proxy:
        worker = start_worker("tests.integration.worker_app", topology, proxy.url, tmp_path, env=health_env(path))
        try:
            # ready: the first receive answered, the file appears
            wait_until(path.exists, timeout=15)
            status, line = probe(path)
            assert status == 0, line
            assert line.startswith(f"healthy: worker pid {worker.process.pid} consuming {topology.queue_name}")
            record = json.loads(path.read_text())
            assert record["state"] == "consuming"
            assert record["interval"] == INTERVAL
            # it keeps being touched while the worker consumes
            send_events(sqs, topology.queue_url, "doGood", [{"n": n} for n in range(5)])
            wait_until(lambda: len(worker.records("doGood")) == 5, timeout=30)
            time.sleep(3 * MAX_AGE)
            assert healthy(path), check_health(str(path))[1]

            # a stuck event loop stops touching it
            os.kill(worker.process.pid, signal.SIGSTOP)
            try:
                stopped = time.monotonic()
                wait_until(lambda: not healthy(path), timeout=10, interval=0.1)
                assert time.monotonic() - stopped < MAX_AGE + 1
                status, line = probe(path)
                assert status == 1
                assert line.startswith("stale: last touched")
                assert f"the worker's event loop is stuck, or the worker pid {worker.process.pid} is gone" in line
            finally:
                os.kill(worker.process.pid, signal.SIGCONT)
            wait_until(lambda: healthy(path), timeout=10, interval=0.1)

            # an outage: stale within max-age plus a tick, and the reason says since when
            proxy.down()
            down = time.monotonic()
            wait_until(lambda: not healthy(path), timeout=15, interval=0.1)
            assert time.monotonic() - down < MAX_AGE + 2 * INTERVAL + 1
            status, line = probe(path)
            assert status == 1, line
            assert line.startswith("stale: last touched"), line
            assert "SQS unreachable since " in line, line
            assert json.loads(path.read_text())["state"] == "unreachable"
            time.sleep(2)
            assert not healthy(path), "still unhealthy while the outage lasts"
            assert worker.process.poll() is None

            # SQS back: healthy again within the backoff cap (1 s here) plus a receive and a tick
            proxy.up()
            wait_until(lambda: healthy(path), timeout=15, interval=0.1)
            status, line = probe(path)
            assert status == 0, line
            assert "unreachable" not in line
        finally:
            worker.stop()
        # a warm shutdown removes the file
        assert worker.process.returncode == 0, worker.log()[-3000:]
        assert not path.exists()
        status, line = probe(path)
        assert status == 1
        assert line == f"no health file at {path}: the worker has not started consuming, or stopped\n"


def test_the_file_appears_only_once_sqs_answered_a_receive(
    sqs: Any, sns: Any, sns_sqs_endpoint: str, tmp_path: Path
) -> None:
    topology = make_topology(sns, sqs, f"health-{uuid.uuid4().hex[:8]}", visibility=30)
    path = tmp_path / "health.json"
    path.write_text('{"pid": 1, "state": "consuming"}\n')  # left behind by a worker that was killed
    os.utime(path, (time.time() - 60, time.time() - 60))
    upstream = urlsplit(sns_sqs_endpoint).port
    assert upstream is not None
    with OutageProxy(upstream) as proxy:
        proxy.down()  # SQS unreachable while the worker starts
        env = {
            **os.environ,
            **health_env(path),
            "EVENTBUS_ENDPOINT_URL": proxy.url,
            "EVENTBUS_SERVICE": "itest",
            "EVENTBUS_QUEUE_NAME": topology.queue_name,
            "EVENTBUS_TOPIC_ARN": topology.topic_arn,
            "EVENTBUS_TEST_RECORD": str(tmp_path / "records.jsonl"),
            "PYTHONPATH": str(ROOT),
        }
        log_path = tmp_path / "worker.log"
        cmd = [sys.executable, "-m", "celery", "-A", "tests.integration.worker_app", "worker", "-P", "solo"]
        cmd += ["-Q", topology.queue_name, "-l", "info"]
        with log_path.open("wb") as log:
            process = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until(lambda: "Cannot connect" in log_path.read_text(errors="replace"), timeout=30)
            assert process.poll() is None
            status, line = probe(path)
            assert status == 1, "not ready while the worker cannot reach SQS"
            assert "stale" in line or "no health file" in line, line
            proxy.up()
            wait_until(lambda: path.exists() and json.loads(path.read_text())["pid"] == process.pid, timeout=30)
            status, line = probe(path)
            assert status == 0, line
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
        assert not path.exists()


def test_a_worker_that_refuses_to_start_writes_no_file(sns_sqs_endpoint: str, tmp_path: Path) -> None:
    path = tmp_path / "health.json"
    env = {
        **os.environ,
        **health_env(path),
        "EVENTBUS_ENDPOINT_URL": sns_sqs_endpoint,
        "EVENTBUS_SERVICE": "itest",
        "EVENTBUS_QUEUE_NAME": f"health-missing-{uuid.uuid4().hex[:8]}",
        "EVENTBUS_TEST_RECORD": str(tmp_path / "records.jsonl"),
        "PYTHONPATH": str(ROOT),
    }
    cmd = [sys.executable, "-m", "celery", "-A", "tests.integration.worker_app", "worker", "-P", "solo", "-l", "info"]
    cmd += ["-Q", env["EVENTBUS_QUEUE_NAME"]]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "refuses to start" in result.stdout + result.stderr
    assert not path.exists()
