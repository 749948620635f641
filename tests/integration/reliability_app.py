"""The Celery app of the fault-injection tests: handlers that record every execution where a crash cannot lose it.

``seen`` writes one row per execution to PostgreSQL (``EVENTBUS_TEST_POSTGRES_URL``, table ``eventbus_test_seen``,
autocommit), so a ``kill -9`` of the worker keeps what was recorded. ``slow`` and ``long_once`` record their start
and end to the JSON-lines file of ``EVENTBUS_TEST_RECORD``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from celery import Celery

if os.environ.get("EVENTBUS_DEDUP_STORE") == "django" or os.environ.get("EVENTBUS_OUTBOX") == "django":
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django_project.settings")
    django.setup()

from eventbus.celery import configure, subscribe
from eventbus.container import build_container
from eventbus.core.envelope import Metadata

if os.environ.get("EVENTBUS_TEST_EVENTS"):
    # task events on, captured to a file (tests.integration.capture)
    app = Celery("reliability", events="tests.integration.capture:RecordingEvents")
    configure(app, build_container())  # the environment as the test set it, not a container built earlier
    app.conf.worker_send_task_events = True
else:
    app = Celery("reliability")
    configure(app, build_container())  # the environment as the test set it, not a container built earlier

SEEN_TABLE = "eventbus_test_seen"
_connection: Any = None
_connection_pid = 0


def postgres() -> Any:
    """This process's autocommit connection (opened after the fork, never shared with the parent)."""
    global _connection, _connection_pid
    if _connection is None or _connection_pid != os.getpid():
        import psycopg

        _connection = psycopg.connect(os.environ["EVENTBUS_TEST_POSTGRES_URL"], autocommit=True)
        _connection_pid = os.getpid()
    return _connection


def record(kind: str, **data: Any) -> None:
    """Append one record to the worker's JSON-lines file (one ``write`` with O_APPEND: no interleaving)."""
    line = json.dumps({"kind": kind, "pid": os.getpid(), "at": time.time(), **data}) + "\n"
    fd = os.open(os.environ["EVENTBUS_TEST_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@subscribe
def seen(task: Any, payload: dict[str, Any], metadata: Metadata) -> None:
    """Record the execution in PostgreSQL, after an optional pause (so crashes hit in-flight work)."""
    time.sleep(float(payload.get("sleep", 0)))
    postgres().execute(
        f"insert into {SEEN_TABLE} (run, n, pid, message_id) values (%s, %s, %s, %s)",
        (payload["run"], payload["n"], os.getpid(), task.request.id),
    )


@subscribe
def slow(task: Any, payload: dict[str, Any], metadata: Metadata) -> None:
    """Run for ``payload.seconds``, recording start and end."""
    record("slow-start", n=payload["n"], message_id=task.request.id)
    time.sleep(float(payload["seconds"]))
    record("slow-end", n=payload["n"], message_id=task.request.id)


@subscribe(idempotent=True)
def once(task: Any, payload: dict[str, Any], metadata: Metadata) -> None:
    """Idempotent: however often one event arrives, one row."""
    time.sleep(float(payload.get("sleep", 0)))
    postgres().execute(
        f"insert into {SEEN_TABLE} (run, n, pid, message_id) values (%s, %s, %s, %s)",
        (payload["run"], payload["n"], os.getpid(), task.request.id),
    )


@subscribe(idempotent=True)
def long_once(task: Any, payload: dict[str, Any], metadata: Metadata) -> None:
    """Idempotent and slower than its queue's visibility timeout: records each execution's start and end."""
    record("long-once-start", message_id=task.request.id)
    time.sleep(float(payload["seconds"]))
    record("long-once-end", message_id=task.request.id)


handler_log = logging.getLogger("tests.handlers")


@subscribe(bind=True, name="SeedStyle")
def seed_style(cls, *args, **kwargs):  # type: ignore[no-untyped-def]
    """The seed's handler: prints everything it got."""
    print(f"TASK EXECUTION =>>>>>>>>>>>>>>>>>> {cls} {args}, {kwargs}")


@subscribe
def careless(task: Any, payload: dict[str, Any], metadata: Metadata) -> None:
    """Handler code at its worst: logs the payload and the unwrapped token, then fails quoting the payload."""
    handler_log.info("handling %s for %s", payload, metadata.authorization.get_secret_value())
    handler_log.debug("full metadata %r", metadata.to_wire())
    if payload.get("retry") and task.request.retries < 1:
        raise task.retry(exc=ValueError(f"retrying {payload}"), countdown=0)
    raise ValueError(f"cannot handle {payload} with token {metadata.authorization.get_secret_value()}")


@subscribe(idempotent=True)
def once_after_retry(task: Any, payload: dict[str, Any], metadata: Metadata) -> None:
    """Idempotent, and needs one retry to succeed: its event's duplicates must still be recognised."""
    if task.request.retries < 1:
        raise task.retry(countdown=0)
    postgres().execute(
        f"insert into {SEEN_TABLE} (run, n, pid, message_id) values (%s, %s, %s, %s)",
        (payload["run"], payload["n"], os.getpid(), task.request.id),
    )
