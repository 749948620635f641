"""``eventbus health [--file F] [--max-age SECONDS]``: is the worker's health file fresh? A container probe.

The worker touches the file from its consumer's event loop while it consumes and SQS answers
(:mod:`eventbus.celery.health`); this command only reads it. Exit status: 0 healthy (the file exists and was touched
less than ``--max-age`` seconds ago), 1 unhealthy (no file, a stale one, one that cannot be read), 2 no file given
(neither ``--file`` nor ``EVENTBUS_HEALTH_FILE``) or bad arguments. One line on stdout says why (on stderr for 2).

``--max-age`` defaults to three times the interval the worker writes into the file (``EVENTBUS_HEALTH_INTERVAL``),
else three times ``EVENTBUS_HEALTH_INTERVAL`` of this environment, else 15 s. Cheap on purpose: the standard library
only, no settings, no Celery, no boto3 (a probe runs every few seconds).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any, Final

__all__ = ["EXIT_HEALTHY", "EXIT_UNHEALTHY", "EXIT_USAGE", "build_parser", "check_health", "run_health"]

EXIT_HEALTHY: Final = 0
EXIT_UNHEALTHY: Final = 1
#: No health file given, or bad arguments (argparse's own status).
EXIT_USAGE: Final = 2

#: The worker's default ``EVENTBUS_HEALTH_INTERVAL``; a file is stale after this many intervals.
DEFAULT_INTERVAL: Final = 5.0
STALE_AFTER_INTERVALS: Final = 3

_EPILOG = (
    "exit status: 0 healthy, 1 unhealthy (no file: the worker has not started consuming or stopped; stale: its "
    "event loop is stuck, SQS is unreachable, or it died), 2 no file given. Use it as a Kubernetes exec probe or an "
    "ECS healthCheck command."
)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds above 0: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``eventbus health`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="eventbus health", description="Exit 0 if the worker's health file is fresh, 1 if not.", epilog=_EPILOG
    )
    parser.add_argument("--file", help="the health file (default: EVENTBUS_HEALTH_FILE)")
    parser.add_argument(
        "--max-age",
        type=_positive,
        metavar="SECONDS",
        help="older than this is stale (default: 3 x the worker's EVENTBUS_HEALTH_INTERVAL)",
    )
    return parser


def run_health(argv: list[str]) -> int:
    """``eventbus health``: print one line, return the exit status (0 healthy, 1 unhealthy, 2 no file given)."""
    args = build_parser().parse_args(argv)
    path = args.file or os.environ.get("EVENTBUS_HEALTH_FILE") or ""
    if not path:
        print(
            "eventbus health: no health file given: pass --file PATH or set EVENTBUS_HEALTH_FILE (the path the "
            "worker writes, from its EVENTBUS_HEALTH_FILE)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    healthy, line = check_health(path, args.max_age)
    print(line)
    return EXIT_HEALTHY if healthy else EXIT_UNHEALTHY


def check_health(path: str, max_age: float | None = None, now: float | None = None) -> tuple[bool, str]:
    """Whether the health file at ``path`` is fresh, and the one line that says so or why not."""
    try:
        with open(path, "rb") as file:
            modified = os.fstat(file.fileno()).st_mtime
            raw = file.read(65536)
    except FileNotFoundError:
        return False, f"no health file at {path}: the worker has not started consuming, or stopped"
    except OSError as exc:
        return False, f"cannot read health file {path} ({exc.strerror or type(exc).__name__})"
    try:
        record = json.loads(raw.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError and json.JSONDecodeError
        record = None
    if not isinstance(record, dict):
        return False, (
            f"health file {path} is not a worker's health record: does something else write to "
            "EVENTBUS_HEALTH_FILE? (give each worker its own path)"
        )
    limit = max_age if max_age is not None else STALE_AFTER_INTERVALS * _interval(record)
    age = max(0.0, (time.time() if now is None else now) - modified)
    unreachable = _text(record.get("unreachable_since")) if record.get("state") == "unreachable" else None
    if age > limit:
        if unreachable:
            why = f"SQS unreachable since {unreachable}"
        else:
            why = f"the worker's event loop is stuck, or the worker{_pid(record)} is gone"
        return False, f"stale: last touched {age:.0f} s ago ({why}; max age {limit:g} s)"
    line = f"healthy: worker{_pid(record)} consuming {_text(record.get('queue')) or '?'}, last touched {age:.1f} s ago"
    last = _text(record.get("last_received"))
    if last:
        line += f", last receive {last}"
    if unreachable:
        line += f"; SQS unreachable since {unreachable}: stale in {limit - age:.0f} s unless it answers again"
    return True, line


def _interval(record: dict[str, Any]) -> float:
    """The worker's interval from its record, else this environment's ``EVENTBUS_HEALTH_INTERVAL``, else 5 s."""
    for value in (record.get("interval"), os.environ.get("EVENTBUS_HEALTH_INTERVAL")):
        try:
            interval = float(value) if value is not None else 0.0
        except (TypeError, ValueError):
            continue
        if interval > 0 and math.isfinite(interval):
            return interval
    return DEFAULT_INTERVAL


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _pid(record: dict[str, Any]) -> str:
    pid = record.get("pid")
    return f" pid {pid}" if isinstance(pid, int) else ""
