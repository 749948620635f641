"""What the OpenTelemetry adapter keeps in the process between collections, to spare the SDK's per-measurement work.

:class:`Sums` holds a monotonic counter's sums, reported by an observable counter; :class:`Pending` holds histogram
measurements until they are recorded together. Both are emptied in a forked child: a pool process must not report
what its parent counted.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Final

from opentelemetry import metrics

__all__ = ["Pending", "Sums", "observable_counter", "pending"]

_Attributes = Mapping[str, str]


class Sums:
    """A monotonic counter's sums by attribute set, kept in this process and reported by an observable counter.

    Adding is one dictionary update under a lock (the SDK's synchronous counter hashes and validates the attributes
    on every ``add``); each collection reports every sum, cumulative, as the SDK does for a synchronous counter.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sums: dict[tuple[str, ...], list[Any]] = {}

    def add(self, key: tuple[str, ...], attributes: _Attributes | None, amount: int) -> None:
        with self._lock:
            entry = self._sums.get(key)
            if entry is None:
                self._sums[key] = [amount, attributes]
            else:
                entry[0] += amount

    def observe(self, _options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        with self._lock:
            return [metrics.Observation(amount, attributes) for amount, attributes in self._sums.values()]

    def reset(self) -> None:
        """Forget every sum (a forked process: its parent's counts are its parent's to report)."""
        self._lock = threading.Lock()
        self._sums = {}


class Pending:
    """Histogram measurements waiting to be recorded: :meth:`add` per event, :meth:`flush` records them all."""

    #: Measurements held at most; the one that fills the list records them all.
    LIMIT: Final = 256

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[tuple[metrics.Histogram, float, _Attributes | None]] = []

    def add(self, histogram: metrics.Histogram, value: float, attributes: _Attributes | None = None) -> None:
        with self._lock:
            self._items.append((histogram, value, attributes))
            full = len(self._items) >= self.LIMIT
        if full:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            items, self._items = self._items, []
        for histogram, value, attributes in items:
            histogram.record(value, attributes)

    def reset(self) -> None:
        """Forget what is pending (a forked process: its parent records it)."""
        self._lock = threading.Lock()
        self._items = []


#: Every process's sums and pending measurements, reset in a forked child (a pool process must not report what its
#: parent counted).
_ALL_KEPT: list[Sums | Pending] = []


def _reset_in_child() -> None:
    for sums in _ALL_KEPT:
        sums.reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)


def observable_counter(meter: metrics.Meter, name: str, unit: str, description: str) -> Sums:
    sums = Sums()
    _ALL_KEPT.append(sums)
    meter.create_observable_counter(name, [sums.observe], unit, description)
    return sums


def pending() -> Pending:
    """A new :class:`Pending`, emptied in a forked child."""
    kept = Pending()
    _ALL_KEPT.append(kept)
    return kept
