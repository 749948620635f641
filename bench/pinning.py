"""``--pin``: the SNS/SQS endpoint on CPUs of its own, the benchmark and its workers on the last CPU.

On a machine this small (2 cores) LocalStack and the worker compete for the same cores, so a worker's CPU per event
slows the endpoint it waits for, and how the scheduler shares the cores moves a run's rate by 20-40%. Pinned, the
endpoint (every thread of the process listening on the endpoint's port, and its children) runs on the other CPUs, as
a remote SQS would, and the raw drain or the worker on the last one: the rate then follows what the consumer itself
costs per event. Workers inherit the benchmark's CPU (``sched_setaffinity`` is inherited across fork and exec).
The endpoint's CPUs are put back when the benchmark ends.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["pinned"]


def _listener(port: int) -> int:
    """The pid of the process listening on TCP ``port`` (from ``ss``)."""
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    found = re.search(r"pid=(\d+)", out)
    if found is None:
        raise SystemExit(f"--pin: no process of this user listens on port {port}")
    return int(found.group(1))


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _threads(pids: list[int]) -> list[int]:
    return [int(task.name) for pid in pids for task in Path(f"/proc/{pid}/task").glob("[0-9]*")]


@contextmanager
def pinned(endpoint: str) -> Iterator[str]:
    """Pin as the module says for the block; yields a one-line description of the placement."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("--pin needs at least 2 CPUs")
    mine, theirs = {cpus[-1]}, set(cpus[:-1])
    server = _listener(int(endpoint.rsplit(":", 1)[1].strip("/")))
    before: dict[int, set[int]] = {}
    for tid in _threads(_tree(server)):
        try:
            before[tid] = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, theirs)
        except OSError:
            continue  # gone meanwhile
    own = os.sched_getaffinity(0)
    os.sched_setaffinity(0, mine)
    try:
        others = ",".join(map(str, sorted(theirs)))
        yield f"endpoint (pid {server}) on CPU {others}, benchmark and workers on CPU {cpus[-1]}"
    finally:
        os.sched_setaffinity(0, own)
        for tid, affinity in before.items():
            try:
                os.sched_setaffinity(tid, affinity)
            except OSError:
                continue
