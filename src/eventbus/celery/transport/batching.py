"""Pure batching logic for SQS acknowledgements and visibility changes (no kombu, no I/O).

Entries are grouped per queue URL; a group is due when it holds ``batch_size`` entries or its oldest entry has
waited ``max_delay`` seconds. Failed entries come back through :meth:`BatchBuffer.retry` until their attempts run out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from eventbus.core.claim_check import Pointer

#: SQS's limit for DeleteMessageBatch and ChangeMessageVisibilityBatch.
SQS_BATCH_LIMIT = 10


@dataclass(slots=True)
class Entry:
    """One receipt handle waiting for a batch call; ``visibility`` only for visibility changes."""

    receipt_handle: str
    message_id: str
    queue: str
    visibility: int | None = None
    attempts: int = 0
    #: When the first transport-level failure of this entry happened (monotonic seconds; 0: none yet).
    failing_since: float = 0.0
    #: The claim-checked body to delete once the message is deleted (deletes only).
    claim: Pointer | None = None


@dataclass
class _Group:
    entries: list[Entry] = field(default_factory=list)
    since: float = 0.0


class BatchBuffer:
    """Collects entries per queue URL and hands out full or overdue batches."""

    def __init__(
        self,
        batch_size: int = SQS_BATCH_LIMIT,
        max_delay: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        max_attempts: int = 3,
    ) -> None:
        if not 1 <= batch_size <= SQS_BATCH_LIMIT:
            raise ValueError(f"batch_size must be 1..{SQS_BATCH_LIMIT}")
        self.batch_size = batch_size
        self.max_delay = max_delay
        self.max_attempts = max_attempts
        self._clock = clock
        self._groups: dict[str, _Group] = {}

    def add(self, queue_url: str, entry: Entry) -> list[Entry] | None:
        """Buffer ``entry``; return a full batch for ``queue_url`` when this one completes it."""
        group = self._groups.setdefault(queue_url, _Group())
        if not group.entries:
            group.since = self._clock()
        group.entries.append(entry)
        if len(group.entries) >= self.batch_size:
            return self._take(queue_url)
        return None

    def due(self, *, everything: bool = False) -> list[tuple[str, list[Entry]]]:
        """Batches whose oldest entry waited ``max_delay`` (all non-empty ones with ``everything``)."""
        now = self._clock()
        ready = [
            url
            for url, group in self._groups.items()
            if group.entries and (everything or now - group.since >= self.max_delay)
        ]
        batches = []
        for url in ready:
            while self._groups[url].entries:
                batches.append((url, self._take(url)))
        return batches

    def retry(self, queue_url: str, entries: list[Entry]) -> list[Entry]:
        """Put failed entries back; return those out of attempts (the caller logs them)."""
        given_up = []
        for entry in entries:
            entry.attempts += 1
            if entry.attempts >= self.max_attempts:
                given_up.append(entry)
            else:
                self.add(queue_url, entry)
        return given_up

    def __len__(self) -> int:
        return sum(len(group.entries) for group in self._groups.values())

    def _take(self, queue_url: str) -> list[Entry]:
        group = self._groups[queue_url]
        batch, group.entries = group.entries[: self.batch_size], group.entries[self.batch_size :]
        group.since = self._clock()
        return batch
