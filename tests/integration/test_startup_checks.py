"""A worker's start-up checks, with real workers on the emulator: what refuses, what only warns, what is logged."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT, Topology, make_topology, wait_until

pytestmark = pytest.mark.integration

SIGNING_KEY = "startup-signing-key-7f3a9c"


def run_worker(
    endpoint: str,
    queue: str,
    tmp: Path,
    *,
    app: str = "tests.integration.worker_app",
    running: str = "ready.",
    **env: str,
) -> tuple[int | None, str]:
    """Start a worker consuming ``queue``; return its exit code (``None``: it was still running once its log showed
    ``running``) and its log."""
    log_path = tmp / f"worker-{time.monotonic_ns()}.log"
    environ = {
        **os.environ,
        "EVENTBUS_ENDPOINT_URL": endpoint,
        "EVENTBUS_SERVICE": "itest",
        "EVENTBUS_TEST_RECORD": str(tmp / "records.jsonl"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp)]),
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    cmd = [sys.executable, "-m", "celery", "-A", app, "worker", "-Q", queue, "-c", "1", "-P", "solo", "-l", "info"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(cmd, env=environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: process.poll() is not None or running in log_path.read_text(errors="replace"), timeout=30)
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=20)
            code = None
        else:
            code = process.returncode
    return code, log_path.read_text(errors="replace")


def queue_names(sqs: Any, prefix: str) -> list[str]:
    return [url.rsplit("/", 1)[-1] for url in sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", [])]


@pytest.fixture
def topology(sns: Any, sqs: Any, unique: str) -> Topology:
    return make_topology(sns, sqs, unique)


def topology_env(topology: Topology) -> dict[str, str]:
    return {"EVENTBUS_QUEUE_NAME": topology.queue_name, "EVENTBUS_TOPIC_ARN": topology.topic_arn}


def test_a_typo_in_q_refuses_and_creates_no_queue(
    sns_sqs_endpoint: str, sqs: Any, topology: Topology, tmp_path: Path
) -> None:
    typo = topology.queue_name[:-1] + "x"
    code, log = run_worker(sns_sqs_endpoint, typo, tmp_path, **topology_env(topology))
    assert code == 1, log[-3000:]
    assert f"the worker consumes {typo} (-Q) but EVENTBUS_QUEUE_NAME is {topology.queue_name}" in log
    assert f"queue {typo} does not exist: create it" in log
    assert f"did you mean {topology.queue_name}" in log
    assert "refuses to start" in log
    assert "ready." not in log
    assert typo not in queue_names(sqs, topology.queue_name[:8])


def test_event_queue_name_other_than_q_refuses(sns_sqs_endpoint: str, topology: Topology, tmp_path: Path) -> None:
    code, log = run_worker(
        sns_sqs_endpoint, topology.queue_name, tmp_path, **topology_env(topology) | {"EVENTBUS_QUEUE_NAME": "elsewhere"}
    )
    assert code == 1, log[-3000:]
    assert f"the worker consumes {topology.queue_name} (-Q) but EVENTBUS_QUEUE_NAME is elsewhere" in log


def test_missing_event_queue_points_at_topology_apply(
    sns_sqs_endpoint: str, sqs: Any, topology: Topology, tmp_path: Path
) -> None:
    missing = f"{topology.queue_name}-gone"
    code, log = run_worker(
        sns_sqs_endpoint, missing, tmp_path, **topology_env(topology) | {"EVENTBUS_QUEUE_NAME": missing}
    )
    assert code == 1, log[-3000:]
    assert f"queue {missing} does not exist: run `eventbus topology apply -A tests.integration.worker_app`" in log
    assert missing not in queue_names(sqs, topology.queue_name[:8])


def test_queue_without_redrive_policy_or_subscription_refuses(
    sns_sqs_endpoint: str, sqs: Any, topology: Topology, tmp_path: Path, unique: str
) -> None:
    bare = f"{unique}-bare"
    sqs.create_queue(QueueName=bare)
    code, log = run_worker(sns_sqs_endpoint, bare, tmp_path, **topology_env(topology) | {"EVENTBUS_QUEUE_NAME": bare})
    assert code == 1, log[-3000:]
    assert f"queue {bare} has no redrive policy (no dead-letter queue" in log
    assert f"queue {bare} is not subscribed to topic {topology.topic_arn.rsplit(':', 1)[-1]}" in log


def test_warn_mode_logs_the_problems_and_runs(
    sns_sqs_endpoint: str, sqs: Any, topology: Topology, tmp_path: Path, unique: str
) -> None:
    bare = f"{unique}-bare"
    sqs.create_queue(QueueName=bare)
    env = topology_env(topology) | {"EVENTBUS_QUEUE_NAME": bare, "EVENTBUS_STARTUP_CHECKS": "warn"}
    code, log = run_worker(sns_sqs_endpoint, bare, tmp_path, **env)
    assert code is None, log[-3000:]
    assert "WARNING" in log
    assert f"queue {bare} has no redrive policy" in log
    assert "EVENTBUS_STARTUP_CHECKS=warn: starting anyway" in log


def test_a_provisioned_queue_passes_and_the_effective_settings_are_logged_once_masked(
    sns_sqs_endpoint: str, topology: Topology, tmp_path: Path
) -> None:
    env = topology_env(topology) | {
        "EVENTBUS_SIGNING_KEY": SIGNING_KEY,
        "EVENTBUS_DATABASE_URL": "postgresql://alice:hunter2pw@db:5432/x",
    }
    code, log = run_worker(sns_sqs_endpoint, topology.queue_name, tmp_path, **env)
    assert code is None, log[-3000:]
    assert log.count("eventbus: effective settings:") == 1
    assert "EVENTBUS_QUEUE_NAME" in log
    assert f"'{topology.queue_name}' (environment)" in log
    assert "EVENTBUS_STARTUP_CHECKS" in log
    assert "'error' (default)" in log
    assert SIGNING_KEY not in log
    assert "hunter2pw" not in log
    assert "refuses" not in log
    assert "could not check" not in log


def test_an_unreachable_endpoint_warns_it_could_not_check_and_starts(topology: Topology, tmp_path: Path) -> None:
    # the worker goes on as before the checks existed: retrying the broker until it is back
    unchecked = f"could not check that queue {topology.queue_name} exists"
    env = topology_env(topology)
    code, log = run_worker("http://127.0.0.1:9", topology.queue_name, tmp_path, running=unchecked, **env)
    assert code is None, log[-3000:]
    assert "refuses" not in log


def test_subscribe_tasks_without_configure_refuse(sns_sqs_endpoint: str, tmp_path: Path, unique: str) -> None:
    (tmp_path / "bare_app.py").write_text(
        textwrap.dedent(
            """
            from celery import Celery

            from eventbus.celery import subscribe

            app = Celery("bare", broker="sqs://test:test@" + __import__("os").environ["BARE_HOST"])


            @subscribe
            def order_placed(task, payload, metadata):
                pass
            """
        )
    )
    host = sns_sqs_endpoint.split("://", 1)[1]
    code, log = run_worker(sns_sqs_endpoint, f"{unique}-q", tmp_path, app="bare_app", BARE_HOST=host)
    assert code == 1, log[-3000:]
    assert (
        "this app has @subscribe tasks but its worker_consumer is celery.worker.consumer:Consumer: call "
        "eventbus.celery.configure(app) (it installs eventbus.celery.SQSConsumer)"
    ) in log
