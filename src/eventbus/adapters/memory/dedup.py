"""An in-memory DeduplicationStore: one process only, for tests and single-worker development."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from eventbus.ports import Claim, DeduplicationStore


@dataclass(frozen=True, slots=True)
class _Record:
    owner: str
    state: Claim
    expires_at: float


class InMemoryDeduplicationStore(DeduplicationStore):
    """Records in a dict behind a lock; ``clock`` (epoch seconds) is injectable so tests need not sleep."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def _live(self, key: str, now: float) -> _Record | None:
        """The record of ``key`` unless it is absent or expired (the lock is held)."""
        record = self._records.get(key)
        if record is None or record.expires_at < now:
            return None
        return record

    def claim(self, key: str, owner: str, lease: float) -> Claim:
        """See :meth:`DeduplicationStore.claim`."""
        with self._lock:
            now = self.clock()
            record = self._live(key, now)
            if record is not None and record.state is Claim.DONE:
                return Claim.DONE
            if record is not None and record.owner != owner:
                return Claim.IN_PROGRESS
            self._records[key] = _Record(owner, Claim.IN_PROGRESS, now + lease)
            return Claim.ACQUIRED

    def complete(self, key: str, owner: str, keep_for: float) -> None:
        """See :meth:`DeduplicationStore.complete`."""
        with self._lock:
            self._records[key] = _Record(owner, Claim.DONE, self.clock() + keep_for)

    def release(self, key: str, owner: str) -> None:
        """See :meth:`DeduplicationStore.release`."""
        with self._lock:
            record = self._records.get(key)
            if record is not None and record.state is Claim.IN_PROGRESS and record.owner == owner:
                del self._records[key]

    def purge_expired(self) -> int:
        """See :meth:`DeduplicationStore.purge_expired`."""
        with self._lock:
            now = self.clock()
            expired = [key for key, record in self._records.items() if record.expires_at < now]
            for key in expired:
                del self._records[key]
            return len(expired)
