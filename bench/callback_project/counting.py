"""What the bench counts inside the worker's processes, in Redis (so the pool children and the main process add up).

* ``BENCH_SNS_CALLS`` (a hash): every SNS API call by ``{role}:{operation}`` (role ``pool`` for a pool child,
  ``main`` for the worker's main process, where the outbox relay thread runs), and ``{role}:entries``, the entries of
  the ``PublishBatch`` calls. Counted by wrapping botocore's ``BaseClient._make_api_call``: eventbus builds its
  clients in sessions of their own, so a hook on boto3's default session would miss them.
* ``BENCH_FIRST`` (a sorted set): each pool child's first successful task, by time (``time.time()``).
* ``BENCH_SQL`` (a hash, only when set: it costs a Redis call per statement): SQL statements by ``{role}:{verb}``
  (``SELECT``, ``UPDATE``...), ``{role}:COMMIT`` for each commit (a transaction: psycopg sends its ``BEGIN``
  with the first statement), and ``pool:tasks``, the tasks that succeeded.
* ``BENCH_CPROFILE`` (a path prefix): each pool child profiles itself with cProfile and writes
  ``{prefix}-{pid}.prof`` every 100 tasks.
"""

from __future__ import annotations

import cProfile
import os
import time
from collections.abc import Callable
from typing import Any

import redis
from celery.signals import task_success, worker_process_init

_MAIN_PID = os.getpid()
_redis = redis.Redis.from_url(os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0"))
_state: dict[str, Any] = {"first": False, "tasks": 0, "profile": None}


def _role() -> str:
    return "main" if os.getpid() == _MAIN_PID else "pool"


def _count_sns(key: str) -> None:
    from botocore.client import BaseClient

    api_call = BaseClient._make_api_call  # type: ignore[attr-defined]

    def counted_api_call(self: Any, operation_name: str, params: Any) -> Any:
        if self.meta.service_model.service_name == "sns":
            role = _role()
            _redis.hincrby(key, f"{role}:{operation_name}", 1)
            if operation_name == "PublishBatch":
                _redis.hincrby(key, f"{role}:entries", len(params.get("PublishBatchRequestEntries", ())))
        return api_call(self, operation_name, params)

    BaseClient._make_api_call = counted_api_call  # type: ignore[attr-defined]


def _count_sql(key: str) -> None:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.backends.signals import connection_created

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        _redis.hincrby(key, f"{_role()}:{sql.lstrip().split(' ', 1)[0].upper()}", 1)
        return execute(sql, params, many, context)

    def on_connection(connection: Any, **_: Any) -> None:
        if wrapper not in connection.execute_wrappers:  # the list outlives a reconnect of the same wrapper object
            connection.execute_wrappers.append(wrapper)

    connection_created.connect(on_connection, weak=False)
    commit = BaseDatabaseWrapper._commit  # type: ignore[attr-defined]

    def counted_commit(self: Any) -> Any:
        _redis.hincrby(key, f"{_role()}:COMMIT", 1)
        return commit(self)

    BaseDatabaseWrapper._commit = counted_commit  # type: ignore[attr-defined]


def _on_process_init(**_: Any) -> None:
    if os.environ.get("BENCH_CPROFILE"):
        profile = cProfile.Profile()
        profile.enable()
        _state["profile"] = profile


def _on_success(**_: Any) -> None:
    if not _state["first"]:
        _state["first"] = True
        _redis.zadd(os.environ.get("BENCH_FIRST", "bench:first"), {str(os.getpid()): time.time()})
    _state["tasks"] += 1
    if os.environ.get("BENCH_SQL"):
        _redis.hincrby(os.environ["BENCH_SQL"], "pool:tasks", 1)
    profile = _state["profile"]
    if profile is not None and _state["tasks"] % 100 == 0:
        profile.dump_stats(f"{os.environ['BENCH_CPROFILE']}-{os.getpid()}.prof")


def install() -> None:
    """Install the counters the ``BENCH_*`` environment asks for (call once, in the worker's main process)."""
    if os.environ.get("BENCH_SNS_CALLS"):
        _count_sns(os.environ["BENCH_SNS_CALLS"])
    if os.environ.get("BENCH_SQL"):
        _count_sql(os.environ["BENCH_SQL"])
    worker_process_init.connect(_on_process_init, weak=False)
    task_success.connect(_on_success, weak=False)
