"""The Celery app the soak benchmark runs: one ``@subscribe`` handler that records each event's id in Redis.

Settings come from ``EVENTBUS_*`` (``configure(app)``'s defaults). The handler of ``soakEvent`` does, in one Redis
round trip, ``HINCRBY SOAK_IDS <payload.i> 1`` (how often each event was handled: lost and duplicated ones are
counted exactly at the end) and ``INCR SOAK_TOTAL`` (the progress the benchmark polls).

``SOAK_GC=<path>``: at shutdown the main process writes there how many objects its cyclic garbage collector freed
(objects in reference cycles, which reference counting never frees).

``SOAK_TRACEMALLOC=<path>`` examines the worker's main process with :mod:`tracemalloc`: the first ``SIGUSR2``
starts tracing (6 frames per allocation) and takes the reference snapshot; each later one writes to ``<path>`` the 10
largest growths since the reference, by source line, then by traceback: what was allocated after the first signal
and is still reachable (after a ``gc.collect()``, whose yield it reports). Tracing only from the first signal keeps
the start-up's imports out and the worker usable. ``SIGUSR2`` is free: Celery takes it for its remote debugger only
when ``CELERY_RDBSIG`` is set.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import tracemalloc
from types import FrameType
from typing import Any

import redis
from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from eventbus.celery import configure, subscribe

app = Celery("soak")
configure(app)

_redis = redis.Redis.from_url(os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0"))
_ids = os.environ.get("SOAK_IDS", "soak:ids")
_total = os.environ.get("SOAK_TOTAL", "soak:total")


@subscribe
def soak_event(task: Any, payload: dict[str, Any], metadata: Any) -> None:
    """The event handler: record the event's id (``payload["i"]``) and count it."""
    pipe = _redis.pipeline(transaction=False)
    pipe.hincrby(_ids, str(payload["i"]), 1)
    pipe.incr(_total)
    pipe.execute()


def _write_gc_stats(**_: Any) -> None:
    """``SOAK_GC``: the main process's cyclic-collector totals at shutdown (objects only that collector freed)."""
    stats = gc.get_stats()
    with open(os.environ["SOAK_GC"], "w") as out:
        json.dump({"collected": [g["collected"] for g in stats], "collections": [g["collections"] for g in stats]}, out)


if os.environ.get("SOAK_GC"):
    worker_shutdown.connect(_write_gc_stats, weak=False)

_TRACE_PATH = os.environ.get("SOAK_TRACEMALLOC", "")
_reference: list[tracemalloc.Snapshot] = []


def _snapshot(signum: int, frame: FrameType | None) -> None:
    """``SIGUSR2``: the first call starts tracing and keeps the reference; later ones write the top 10 growths."""
    if not tracemalloc.is_tracing():
        tracemalloc.start(6)
    before = tracemalloc.get_traced_memory()[0]
    collected = sum(generation["collected"] for generation in gc.get_stats())  # by the automatic collections so far
    unreachable = gc.collect()  # what only the cyclic collector frees is no growth: look at what stays reachable
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap>")]
    )
    if not _reference:
        _reference.append(snapshot)
        return
    after = tracemalloc.get_traced_memory()[0]
    lines = [
        f"traced {before / 1024:.0f} KiB; gc.collect() freed {unreachable} unreachable objects, "
        f"{(before - after) / 1024:.0f} KiB; traced now {after / 1024:.0f} KiB",
        f"objects freed by the cyclic collector since the worker started: {collected}; events handled: "
        f"{int(_redis.get(_total) or 0)}",
    ]
    for key in ("lineno", "traceback"):
        lines.append(f"top 10 growths since the reference, by {key}:")
        for diff in snapshot.compare_to(_reference[0], key)[:10]:
            lines.append(
                f"  {diff.size_diff / 1024:+9.1f} KiB {diff.count_diff:+7d} blocks  {diff.size / 1024:9.1f} KiB"
            )
            frames = diff.traceback.format(limit=6 if key == "traceback" else 1, most_recent_first=True)
            lines.extend(f"      {line}" for line in frames)
    with open(_TRACE_PATH, "w") as out:
        out.write("\n".join(lines) + "\n")


def _install_snapshot_handler(**_: Any) -> None:
    signal.signal(signal.SIGUSR2, _snapshot)  # after Celery installed its own handlers


if _TRACE_PATH:
    worker_ready.connect(_install_snapshot_handler, weak=False)
