"""The Celery app the outbox relay benchmark runs as its relay processes, and what it records there.

A worker of this app is an ordinary eventbus worker with ``EVENTBUS_OUTBOX=sqlalchemy``: :func:`configure` adds the
outbox relay step, whose thread in the main process runs :meth:`OutboxRelay.run` (batch ``EVENTBUS_OUTBOX_BATCH_SIZE``,
pause ``EVENTBUS_OUTBOX_RELAY_INTERVAL`` after a pass that found nothing). eventbus has no relay command of its own;
this step is how a service relays. It consumes an empty queue of its own meanwhile.

Recorded in the worker's main process, under the Redis prefix ``BENCH_PREFIX``:

* every SNS request (botocore's ``_make_api_call``): ``{prefix}:calls`` (a hash, operation -> count);
* every ``PublishBatch``: ``{prefix}:batches`` gets ``{"pid", "t0", "t1", "keys"}`` (epoch seconds of the call's
  start and return; the ``key`` of each event SNS accepted), and ``{prefix}:sent`` grows by the accepted entries;
* at start, ``{prefix}:ready`` grows by one (``worker_ready``);
* at shutdown, the file ``BENCH_STATS`` gets the relay's profile: passes, what each part of a pass cost (claim,
  decode + publish, delete), rows per claim, empty and partial claims (and empty claims made while claimable rows
  were there: lost to another relay), drains (each followed by a pause), and the
  process's CPU seconds from the end of its first pass to its shutdown.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import defaultdict
from typing import Any

import redis
from celery import Celery
from celery.signals import worker_ready, worker_shutdown
from sqlalchemy import func, select

from eventbus.adapters.aws.sns import SnsPublisher
from eventbus.adapters.sqlalchemy.outbox import SqlAlchemyOutboxStore
from eventbus.adapters.sqlalchemy.tables import outbox
from eventbus.celery import configure
from eventbus.core.outbox import OutboxRelay
from eventbus.payload import EventPayload
from eventbus.ports import ClaimedBatch


class BenchRelayedPayload(EventPayload):
    """The benchmark's event: ``key`` names it uniquely within a run (scenario and number)."""

    key: str
    note: str = "outbox relay benchmark"


def event_key(message: str) -> str:
    """The ``key`` of an envelope's JSON (an SNS entry's ``Message``, a raw-delivery body); ``""`` if none."""
    try:
        payload = json.loads(message).get("payload") or {}
    except ValueError:
        return ""
    key = payload.get("key") if isinstance(payload, dict) else None
    return key if isinstance(key, str) else ""


#: Seconds and counts of this process's relay, written to ``BENCH_STATS`` at shutdown.
STATS: defaultdict[str, float] = defaultdict(float)
_PREFIX = os.environ.get("BENCH_PREFIX", "bench:relay")
_redis_client: redis.Redis | None = None
_redis_lock = threading.Lock()


def _redis() -> redis.Redis:
    """One client per process, made on first use (after the pool forked)."""
    global _redis_client
    with _redis_lock:
        if _redis_client is None:
            _redis_client = redis.Redis.from_url(os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0"))
        return _redis_client


def _record_sns_calls() -> None:
    """Count every SNS request and record each PublishBatch's times and accepted events in Redis."""
    from botocore.client import BaseClient

    api_call = BaseClient._make_api_call  # type: ignore[attr-defined]

    def recorded_api_call(self: Any, operation_name: str, params: Any) -> Any:
        if self.meta.service_model.service_name != "sns":
            return api_call(self, operation_name, params)
        t0 = time.time()
        response = api_call(self, operation_name, params)
        t1 = time.time()
        pipe = _redis().pipeline(transaction=False)
        pipe.hincrby(f"{_PREFIX}:calls", operation_name, 1)
        if operation_name == "PublishBatch":
            messages = {entry["Id"]: entry["Message"] for entry in params["PublishBatchRequestEntries"]}
            keys = [event_key(messages[ok["Id"]]) for ok in response.get("Successful", [])]
            pipe.rpush(f"{_PREFIX}:batches", json.dumps({"pid": os.getpid(), "t0": t0, "t1": t1, "keys": keys}))
            pipe.incrby(f"{_PREFIX}:sent", len(keys))
        pipe.execute()
        return response

    BaseClient._make_api_call = recorded_api_call  # type: ignore[attr-defined]


def _first_pass_cpu(args: Any, result: Any) -> None:
    # process CPU from the end of the first pass on: the relay's work (and the idle consumer's), not the start-up
    STATS.setdefault("cpu_first_pass", time.process_time())


def _timed(owner: type, name: str, stat: str, after: Any = None) -> None:
    """Wrap ``owner.name`` to add its seconds to ``STATS[stat]`` and its calls to ``STATS[stat + ':calls']``."""
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        result = original(*args, **kwargs)
        STATS[f"{stat}:seconds"] += time.perf_counter() - start
        STATS[f"{stat}:calls"] += 1
        if after is not None:
            after(args, result)
        return result

    setattr(owner, name, wrapper)


def _count_claimed(args: Any, batch: ClaimedBatch) -> None:
    limit: int = args[1]  # claim(store, limit, lease, ids), as OutboxRelay.relay calls it
    rows = len(batch.items)
    STATS["claimed_rows"] += rows
    STATS[f"claim_rows={rows}"] += 1
    if rows == 0:
        STATS["empty_claims"] += 1
        # rows claimable now although this claim got none: it lost them to another relay's claim (then it pauses)
        store: SqlAlchemyOutboxStore = args[0]
        with store.session_factory() as session:
            claimable = session.scalar(
                select(func.count()).select_from(outbox).where(outbox.c.claimed_until < time.time())
            )
        if claimable:
            STATS["empty_claims_with_backlog"] += 1
    elif rows < limit:
        STATS["partial_claims"] += 1


def _profile_relay() -> None:
    _timed(OutboxRelay, "relay", "pass", after=_first_pass_cpu)
    _timed(OutboxRelay, "drain", "drain")
    _timed(SqlAlchemyOutboxStore, "claim", "claim", after=_count_claimed)
    _timed(SqlAlchemyOutboxStore, "mark_sent", "mark_sent")
    _timed(SnsPublisher, "publish_batch", "publish_batch")


app = Celery("bench-relay")
configure(app)
if os.environ.get("BENCH_RECORD", "1") == "1":
    _record_sns_calls()
    _profile_relay()


@worker_ready.connect  # type: ignore[untyped-decorator]
def _ready(**_: Any) -> None:
    _redis().incr(f"{_PREFIX}:ready")


@worker_shutdown.connect  # type: ignore[untyped-decorator]
def _write_stats(**_: Any) -> None:
    path = os.environ.get("BENCH_STATS")
    STATS["cpu_end"] = time.process_time()
    if path:
        with open(path, "w") as out:
            json.dump(dict(STATS), out)
