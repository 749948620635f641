"""Worker health: ``eventbus health`` on every kind of file, and what the worker's health file holds on each tick."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery import Celery

from eventbus.celery import configure
from eventbus.celery.health import CONSUMING, UNREACHABLE, HealthFile, HealthFileStep, iso
from eventbus.cli_health import check_health, run_health
from eventbus.container import build_container, set_container
from eventbus.settings import EventBusSettings


@pytest.fixture(autouse=True)
def _no_health_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENTBUS_HEALTH_FILE", raising=False)
    monkeypatch.delenv("EVENTBUS_HEALTH_INTERVAL", raising=False)


def write_record(path: Path, age: float, **fields: object) -> Path:
    """A health file as the worker writes it, last modified ``age`` seconds ago."""
    record = {"pid": 4242, "queue": "prod__billing__queue", "state": CONSUMING, "interval": 5.0, **fields}
    path.write_text(json.dumps(record) + "\n")
    modified = time.time() - age
    os.utime(path, (modified, modified))
    return path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = run_health(argv)
    out, err = capsys.readouterr()
    return status, out, err


# -- eventbus health ---------------------------------------------------------------------------------------------


def test_a_missing_file_is_unhealthy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "health.json"
    status, out, _ = run(["--file", str(path)], capsys)
    assert status == 1
    assert out == f"no health file at {path}: the worker has not started consuming, or stopped\n"


def test_a_fresh_file_is_healthy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_record(tmp_path / "health.json", age=2, last_received="2030-01-01T00:00:00Z")
    status, out, _ = run(["--file", str(path)], capsys)
    assert status == 0
    assert out.startswith("healthy: worker pid 4242 consuming prod__billing__queue, last touched 2.0 s ago")
    assert "last receive 2030-01-01T00:00:00Z" in out
    assert out.count("\n") == 1


def test_a_stale_file_is_unhealthy_and_says_the_loop_is_stuck(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_record(tmp_path / "health.json", age=42)
    status, out, _ = run(["--file", str(path)], capsys)
    assert status == 1
    assert out == (
        "stale: last touched 42 s ago (the worker's event loop is stuck, or the worker pid 4242 is gone; "
        "max age 15 s)\n"
    )


def test_a_stale_file_of_an_outage_says_since_when(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_record(tmp_path / "health.json", age=42, state=UNREACHABLE, unreachable_since="2030-01-01T00:00:00Z")
    status, out, _ = run(["--file", str(path)], capsys)
    assert status == 1
    assert out == "stale: last touched 42 s ago (SQS unreachable since 2030-01-01T00:00:00Z; max age 15 s)\n"


def test_an_outage_younger_than_max_age_is_still_healthy_and_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_record(tmp_path / "health.json", age=4, state=UNREACHABLE, unreachable_since="2030-01-01T00:00:00Z")
    status, out, _ = run(["--file", str(path)], capsys)
    assert status == 0
    assert "SQS unreachable since 2030-01-01T00:00:00Z: stale in 11 s unless it answers again" in out


def test_max_age_option_overrides_the_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_record(tmp_path / "health.json", age=20)
    assert run(["--file", str(path), "--max-age", "30"], capsys)[0] == 0
    assert run(["--file", str(path), "--max-age", "10"], capsys)[0] == 1


def test_default_max_age_is_three_intervals_of_the_worker_then_of_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_record(tmp_path / "health.json", age=2, interval=0.5)
    healthy, line = check_health(str(path))
    assert not healthy
    assert "max age 1.5 s" in line
    write_record(path, age=2, interval="not a number")
    monkeypatch.setenv("EVENTBUS_HEALTH_INTERVAL", "0.5")
    assert not check_health(str(path))[0]
    monkeypatch.setenv("EVENTBUS_HEALTH_INTERVAL", "1")
    assert check_health(str(path))[0]


def test_an_unreadable_file_is_unhealthy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "health.json"
    path.mkdir()  # the tests may run as root, which reads any file whatever its mode
    status, out, _ = run(["--file", str(path)], capsys)
    assert status == 1
    assert out == f"cannot read health file {path} (Is a directory)\n"


@pytest.mark.parametrize("content", [b"", b"not json", b"\xff\xfe", b"[1, 2]", b"null"])
def test_a_file_that_is_not_a_health_record_is_unhealthy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    path = tmp_path / "health.json"
    path.write_bytes(content)
    status, out, _ = run(["--file", str(path)], capsys)
    assert status == 1
    assert out.startswith(f"health file {path} is not a worker's health record")


def test_no_file_configured_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run([], capsys)
    assert status == 2
    assert out == ""
    assert "pass --file PATH or set EVENTBUS_HEALTH_FILE" in err


def test_the_file_comes_from_the_environment_unless_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh = write_record(tmp_path / "fresh.json", age=0)
    monkeypatch.setenv("EVENTBUS_HEALTH_FILE", str(tmp_path / "missing.json"))
    assert run([], capsys)[0] == 1
    assert run(["--file", str(fresh)], capsys)[0] == 0
    monkeypatch.setenv("EVENTBUS_HEALTH_FILE", str(fresh))
    assert run([], capsys)[0] == 0


@pytest.mark.parametrize("bad", ["0", "-1", "soon", "inf", "nan"])
def test_a_bad_max_age_is_refused(bad: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_health(["--file", str(tmp_path / "h"), "--max-age", bad])
    assert exit_info.value.code == 2
    assert "--max-age" in capsys.readouterr().err


def test_the_probe_imports_neither_celery_nor_boto3() -> None:
    code = (
        "import sys; from eventbus.cli import main; main(['health', '--file', '/nonexistent/h']); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'celery', 'kombu', 'boto3', 'botocore'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "[]"


# -- the worker's side: HealthFile ---------------------------------------------------------------------------------


def read(path: Path) -> dict[str, object]:
    return dict(json.loads(path.read_text()))


def test_nothing_is_written_before_the_first_receive(tmp_path: Path) -> None:
    health = HealthFile(tmp_path / "health.json", "q", 5.0, pid=7)
    health.beat(None, {}, now=1000.0)
    health.beat(None, {"q": 990.0}, now=1000.0)
    assert not health.path.exists()


def test_an_outage_before_the_first_healthy_tick_writes_nothing(tmp_path: Path) -> None:
    health = HealthFile(tmp_path / "health.json", "q", 5.0, pid=7)
    health.beat(900.0, {"q": 990.0}, now=1000.0)
    assert not health.path.exists()


def test_a_consuming_tick_touches_the_file(tmp_path: Path) -> None:
    health = HealthFile(tmp_path / "health.json", "q", 0.5, pid=7)
    now = time.time()
    health.beat(now - 3, {}, now=now)
    assert read(health.path) == {
        "pid": 7,
        "queue": "q",
        "state": CONSUMING,
        "interval": 0.5,
        "last_received": iso(now - 3),
        "unreachable_since": None,
    }
    assert health.path.stat().st_mtime == pytest.approx(now, abs=0.01)
    assert [p.name for p in tmp_path.iterdir()] == ["health.json"], "no temporary file left behind"


def test_an_outage_keeps_the_last_healthy_time_and_says_since_when(tmp_path: Path) -> None:
    health = HealthFile(tmp_path / "health.json", "q", 5.0, pid=7)
    start = time.time() - 60
    health.beat(start, {}, now=start)
    health.beat(start, {"q": start + 10, "other": start + 5}, now=start + 20)
    record = read(health.path)
    assert record["state"] == UNREACHABLE
    assert record["unreachable_since"] == iso(start + 5)
    assert health.path.stat().st_mtime == pytest.approx(start, abs=0.01)
    healthy, line = check_health(str(health.path))
    assert not healthy
    assert f"SQS unreachable since {iso(start + 5)}" in line
    # SQS answers again: the next tick makes the file fresh
    health.beat(start + 30, {}, now=start + 60)
    assert read(health.path)["state"] == CONSUMING
    assert check_health(str(health.path))[0]


def test_remove_deletes_the_file_and_forgets_the_last_touch(tmp_path: Path) -> None:
    health = HealthFile(tmp_path / "health.json", "q", 5.0, pid=7)
    health.beat(1000.0, {}, now=1000.0)
    health.remove()
    assert not health.path.exists()
    health.remove()  # twice is fine
    health.beat(1000.0, {"q": 1001.0}, now=1002.0)
    assert not health.path.exists(), "an outage after a restart does not bring back an old file"


def test_a_file_that_cannot_be_written_is_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    health = HealthFile(tmp_path / "missing-dir" / "health.json", "q", 5.0, pid=7)
    with caplog.at_level(logging.INFO, logger="eventbus.health"):
        health.beat(1000.0, {}, now=1000.0)
        health.beat(1000.0, {}, now=1005.0)
        assert [r.levelno for r in caplog.records] == [logging.WARNING]
        assert "check that its directory exists" in caplog.text
        (tmp_path / "missing-dir").mkdir()
        health.beat(1000.0, {}, now=time.time())
    assert health.path.exists()
    assert "written again" in caplog.records[-1].getMessage()


# -- configure -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("health_file", "installed"), [(None, False), ("/tmp/eventbus-health.json", True)])
def test_configure_installs_the_step_only_with_a_health_file(health_file: str | None, installed: bool) -> None:
    app = Celery("t", set_as_current=False)
    settings = EventBusSettings(endpoint_url="http://localhost:4566", queue_name="svc__queue", health_file=health_file)
    try:
        configure(app, build_container(settings))
    finally:
        set_container(None)  # configure() made it the process's container
    assert (HealthFileStep in app.steps["consumer"]) is installed
