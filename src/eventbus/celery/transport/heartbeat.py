"""Pure scheduling for the transport's visibility heartbeat and outage backoff (no kombu, no I/O).

A message a worker holds (running, or prefetched and waiting for a pool slot) must not become visible to other
consumers. :class:`VisibilityHeartbeat` tracks when each held message's visibility lapses and says which ones to
extend on each tick: those past ``margin`` of their visibility timeout. :class:`Backoff` paces retries while SQS is
unreachable and measures the outage.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(slots=True)
class _Held:
    visibility: int
    deadline: float
    #: When the extension on its way was handed out (``None``: none is on its way).
    sent_at: float | None = None
    refusals: int = 0


#: Extensions SQS refused in a row (a stale receipt handle: the message is gone) before the message is given up.
_MAX_REFUSALS = 3


class VisibilityHeartbeat:
    """Deadlines of held messages, keyed by delivery tag (the SQS receipt handle).

    A deadline moves only when SQS confirmed an extension (:meth:`extended`), counted from when the extension was
    handed out; a failed one (:meth:`extension_failed`) leaves the message due, so the next tick sends it again, and
    one that never answers is sent again after a quarter of the timeout.
    """

    def __init__(self, margin: float = 0.5, clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < margin < 1:
            raise ValueError("margin must be between 0 and 1")
        self.margin = margin
        self._clock = clock
        self._held: dict[str, _Held] = {}

    def received(self, tag: str, visibility: int) -> None:
        """A message arrived now, invisible to others for ``visibility`` seconds."""
        self._held[tag] = _Held(visibility, self._clock() + visibility)

    def due(self, live: Iterable[str]) -> list[tuple[str, int]]:
        """The ``(tag, seconds)`` to extend now, among ``live`` (the tags still held); forget the rest.

        A message is due once less than ``margin`` of its visibility timeout remains and no extension of it is on
        its way; it is to be extended by a whole timeout. Report the outcome with :meth:`extended` or
        :meth:`extension_failed`. Tags never seen by :meth:`received` (their timeout is unknown) are not extended.
        """
        now = self._clock()
        alive = set(live)
        for tag in [tag for tag in self._held if tag not in alive]:
            del self._held[tag]
        extend = []
        for tag in alive:
            held = self._held.get(tag)
            if held is None or held.refusals >= _MAX_REFUSALS:
                continue
            if held.sent_at is not None and now - held.sent_at < held.visibility / 4:
                continue  # on its way
            if held.deadline - now <= held.visibility * self.margin:
                held.sent_at = now
                extend.append((tag, held.visibility))
        return extend

    def extended(self, tag: str) -> None:
        """SQS confirmed the extension of ``tag``: its new deadline counts from when the extension was sent."""
        held = self._held.get(tag)
        if held is not None and held.sent_at is not None:
            held.deadline, held.sent_at, held.refusals = held.sent_at + held.visibility, None, 0

    def extension_failed(self, tag: str, *, refused: bool = False) -> None:
        """The extension of ``tag`` failed (the call, or SQS ``refused`` the entry): it is due again at once."""
        held = self._held.get(tag)
        if held is not None:
            held.sent_at = None
            held.refusals = held.refusals + 1 if refused else 0

    def forget(self, tag: str) -> None:
        """Stop tracking ``tag`` (acknowledged, released or left for redelivery)."""
        self._held.pop(tag, None)

    def shortest_visibility(self) -> int | None:
        """The smallest visibility timeout among held messages (``None`` when none is held)."""
        return min((held.visibility for held in self._held.values()), default=None)

    def __len__(self) -> int:
        return len(self._held)


class Backoff:
    """Exponential retry delays while something keeps failing, and how long it has been failing."""

    def __init__(self, initial: float = 0.5, maximum: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.initial = initial
        self.maximum = maximum
        self._clock = clock
        self.failures = 0
        self.failing_since: float | None = None

    def failed(self) -> float:
        """Record a failure; return how long to wait before the next attempt."""
        if self.failing_since is None:
            self.failing_since = self._clock()
        self.failures += 1
        return float(min(self.initial * 2 ** (self.failures - 1), self.maximum))

    def succeeded(self) -> float | None:
        """Record a success; return the outage's duration in seconds if there was one, else ``None``."""
        since, self.failing_since, self.failures = self.failing_since, None, 0
        return None if since is None else self._clock() - since

    @property
    def failing(self) -> bool:
        """True between a failure and the next success."""
        return self.failing_since is not None
