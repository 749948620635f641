"""Redaction benchmark (issue 9, item 7): what a log line and a message cost once many personal values were held.

    python -m bench.redaction --events 34 --leaves 10000 --ordinary 100

The scenario of the report: ``--events`` personal events of ~117 KiB (``--leaves`` leaves each) are held while
"handled" and released (they join the recent values); then the log lines of ``--ordinary`` ordinary events (three
lines each, as a worker writes them at DEBUG) are redacted, and one 160-character line. It runs the old algorithm
(copied below: a snapshot of every held value, ``value in text`` for each of them) and the new one in the same run;
the new one twice, with its default bound on recent values and with every value kept, to show the cost of a line
does not depend on how many are held. Then the cost of collecting and holding one maximal personal payload
(``MAX_MESSAGE_BYTES``, 1 MiB, of short leaves), per kind of text. No network, no worker: CPU only.
"""

from __future__ import annotations

import argparse
import json
import string
import threading
import time
import tracemalloc
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from eventbus.core.envelope import MAX_MESSAGE_BYTES
from eventbus.core.redaction import Redactor, SecretIndex, sensitive_values

PERSONAL = {"eventName": "customerExported", "containsPersonalData": True}
LINE_160 = (
    "Task eventbus.handlers.customer_exported[5f3b8c1e-0000-4000-8000-000000000000] raised unexpected: "
    "ValueError('customer not found') in 0.0123s"
)[:160].ljust(160, ".")


# --- the old algorithm (src/eventbus/core/redaction.py before issue 9, items 6 and 7), the baseline ---

_OLD_WALK_LIMIT = 10_000


def old_sensitive_values(metadata: Mapping[str, Any], payload: object) -> set[str]:
    values: set[str] = set()
    if metadata.get("containsPersonalData") is True:
        values.update(_old_leaves(payload))
    return values


def _old_leaves(value: object) -> Iterator[str]:
    stack, seen = [value], 0
    while stack and seen < _OLD_WALK_LIMIT:
        item = stack.pop()
        seen += 1
        if isinstance(item, str):
            if len(item) >= 4:
                yield item
        elif isinstance(item, bool):
            continue
        elif isinstance(item, (int, float)):
            text = str(item)
            if sum(ch.isdigit() for ch in text) >= 6:
                yield text
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def old_redact(text: str, values: Iterable[str]) -> str:
    for value in values:
        if value in text:
            text = text.replace(value, "***")
    return text


class OldRedactor:
    def __init__(self, recent: int = 32) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._recent: deque[frozenset[str]] = deque()
        self._recent_limit = recent
        self._snapshot: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self._snapshot)

    @contextmanager
    def holding(self, values: Iterable[str]) -> Iterator[None]:
        group = frozenset(values)
        if not group:
            yield
            return
        with self._lock:
            self._counts.update(group)
            self._refresh()
        try:
            yield
        finally:
            with self._lock:
                self._counts.subtract(group)
                self._remember(group)

    def _remember(self, group: frozenset[str]) -> None:
        self._recent.append(group)
        self._counts.update(group)
        while len(self._recent) > self._recent_limit:
            self._counts.subtract(self._recent.popleft())
        self._refresh()

    def _refresh(self) -> None:
        self._snapshot = tuple(value for value, count in self._counts.items() if count > 0)
        if len(self._counts) > 4 * max(len(self._snapshot), 64):
            self._counts = Counter({value: count for value, count in self._counts.items() if count > 0})

    def redact(self, text: str) -> str:
        return old_redact(text, self._snapshot)


# --- the scenario ---


def personal_payload(event: int, leaves: int) -> dict[str, Any]:
    """``leaves`` distinct 8-character texts: ~12 bytes of JSON each, 117 KiB for 10,000."""
    return {"customers": [f"p{event:02d}{i:05d}" for i in range(leaves)]}


def ordinary_lines(n: int) -> list[str]:
    """Three log lines per ordinary event, as a worker writes them at DEBUG."""
    lines = []
    for i in range(n):
        task_id = uuid.uuid4()
        kwargs = {"metadata": {"eventName": "orderPlaced", "publisherName": "shop"}, "payload": {"order_id": i}}
        lines += [
            f"Task eventbus.handlers.order_placed[{task_id}] received",
            f"TaskPool: Apply <function _fast_trace_task> (args:('eventbus.handlers.order_placed', '{task_id}', "
            f"{{'lang': 'py', 'task': 'eventbus.handlers.order_placed', 'id': '{task_id}'}}) kwargs:{kwargs!r})",
            f"Task eventbus.handlers.order_placed[{task_id}] succeeded in 0.0042s: None",
        ]
    return lines


def timed(run: Callable[[], object], repeat: int = 1) -> float:
    """Best of ``repeat`` runs, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def scenario(name: str, make: Callable[[], Any], collect: Callable[..., set[str]], args: argparse.Namespace) -> None:
    payloads = [personal_payload(e, args.leaves) for e in range(args.events)]

    def hold_all(redactor: Any) -> None:
        for payload in payloads:
            with redactor.holding(collect(PERSONAL, payload)):
                pass

    tracemalloc.start()  # a first pass for the memory the redactor keeps (tracemalloc slows it down)
    before = tracemalloc.get_traced_memory()[0]
    kept = make()
    hold_all(kept)
    memory = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del kept
    redactor = make()
    hold = timed(lambda: hold_all(redactor))
    lines = ordinary_lines(args.ordinary)
    ordinary = timed(lambda: [redactor.redact(line) for line in lines])
    one_line = timed(lambda: redactor.redact(LINE_160), repeat=5)
    print(
        f"{name:<28} {hold:9.2f} {memory / 2**20:8.1f} {ordinary:10.3f} {ordinary / args.ordinary * 1000:9.2f}"
        f" {one_line * 1000:10.3f}"
    )


def maximal_payload(kind: str) -> dict[str, Any]:
    """As many short distinct leaves as fit in a message body of MAX_MESSAGE_BYTES."""
    alphabet = string.ascii_lowercase + string.digits
    first = {"ascii": "a", "non-ascii": "é", "escaped": "'"}[kind]
    texts = [first + a + b + c for a in alphabet for b in alphabet for c in alphabet]
    payload: dict[str, Any] = {"texts": []}
    size = len(json.dumps({"metadata": PERSONAL, "payload": payload}, ensure_ascii=False).encode())
    for text in texts:
        size += len(json.dumps(text, ensure_ascii=False).encode()) + 2
        if size > MAX_MESSAGE_BYTES:
            break
        payload["texts"].append(text)
    return payload


def per_message(kind: str) -> None:
    payload = maximal_payload(kind)
    values: set[str] = set()

    def collect() -> None:
        values.update(sensitive_values(PERSONAL, payload))

    def hold_and_drop() -> None:
        with Redactor(recent=0).holding(values):  # no recent values: released, they are dropped
            pass

    walk = timed(collect, repeat=3)
    held = timed(hold_and_drop, repeat=3)
    indexed = len(SecretIndex(values))
    print(f"{kind:<10} {len(payload['texts']):7d} {indexed:10d} {walk * 1000:9.1f} {held * 1000:13.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=34, help="personal events held first")
    parser.add_argument("--leaves", type=int, default=10_000, help="leaves per personal event")
    parser.add_argument("--ordinary", type=int, default=100, help="ordinary events whose log lines are redacted")
    args = parser.parse_args(argv)
    size = len(json.dumps({"metadata": PERSONAL, "payload": personal_payload(0, args.leaves)}, separators=(", ", ": ")))
    print(f"{args.events} personal events of {size / 1024:.0f} KiB ({args.leaves} leaves each), then")
    print(f"{args.ordinary} ordinary events ({3 * args.ordinary} log lines) and one 160-character line")
    print(f"{'algorithm':<28} {'hold (s)':>9} {'mem (MiB)':>8} {'lines (s)':>10} {'ms/event':>9} {'160ch (ms)':>10}")
    scenario("old", OldRedactor, old_sensitive_values, args)
    scenario("new, default bound", Redactor, sensitive_values, args)
    scenario("new, every value kept", lambda: Redactor(recent=10**6, recent_values=10**9), sensitive_values, args)
    print()
    print(f"one maximal personal payload ({MAX_MESSAGE_BYTES // 1024} KiB of 4-character texts), new algorithm:")
    print(f"{'texts':<10} {'leaves':>7} {'indexed':>10} {'walk (ms)':>9} {'hold+drop (ms)':>13}")
    for kind in ("ascii", "non-ascii", "escaped"):
        per_message(kind)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
