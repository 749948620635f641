"""An in-memory OutboxStore: rows join an entity repository's transaction through its ``on_commit``.

For tests and for services without a database; it passes the same contract suite as the Django and SQLAlchemy
stores. Rows live in this process only, so an outbox here survives neither a restart nor a crash.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eventbus.core.envelope import Envelope
from eventbus.ports import ClaimedBatch, EntityRepository, OutboxItem, OutboxStore


@dataclass
class _Row:
    id: str
    body: str
    event_name: str
    created_at: float
    attempts: int = 0
    claim_token: str | None = None
    claimed_until: float = 0.0

    def item(self) -> OutboxItem:
        return OutboxItem(id=self.id, body=self.body, event_name=self.event_name, attempts=self.attempts)


class InMemoryOutboxStore(OutboxStore):
    """Outbox rows in a dict, oldest first; thread-safe.

    With ``repository``, rows added inside its ``atomic()`` block are inserted by its ``on_commit``: they appear when
    it commits and never if it rolls back. Without one (or outside a block) they appear at once. ``clock`` gives the
    time in seconds for leases and retry delays (tests may pass a fake one).
    """

    orm = "memory"

    def __init__(self, repository: EntityRepository | None = None, clock: Callable[[], float] = time.time) -> None:
        self.repository = repository
        self.clock = clock
        self._rows: dict[str, _Row] = {}  # insertion order is commit order, i.e. oldest first
        self._lock = threading.Lock()

    def add(self, envelopes: Sequence[Envelope]) -> list[str]:
        """Store the envelopes now, or when the repository's open transaction commits."""
        now = self.clock()
        rows = [_Row(str(uuid.uuid4()), envelope.to_json(), envelope.event_name, now) for envelope in envelopes]
        if rows:
            self.on_commit(lambda: self._insert(rows))
        return [row.id for row in rows]

    def _insert(self, rows: list[_Row]) -> None:
        with self._lock:
            for row in rows:
                self._rows[row.id] = row

    def on_commit(self, callback: Callable[[], None]) -> None:
        """The repository's ``on_commit``; at once without a repository."""
        if self.repository is None:
            callback()
        else:
            self.repository.on_commit(callback)

    def claim(self, limit: int, lease: float, ids: Sequence[str] | None = None) -> ClaimedBatch:
        """Claim up to ``limit`` unclaimed (or expired) rows, oldest first; only ``ids`` if given."""
        token = str(uuid.uuid4())
        wanted = None if ids is None else set(ids)
        with self._lock:
            now = self.clock()
            claimed: list[OutboxItem] = []
            for row in self._rows.values():
                if len(claimed) >= limit:
                    break
                if row.claimed_until < now and (wanted is None or row.id in wanted):
                    row.claim_token, row.claimed_until = token, now + lease
                    claimed.append(row.item())
        return ClaimedBatch(token=token, items=claimed)

    def mark_sent(self, token: str, ids: Sequence[str]) -> None:
        """Delete rows ``ids`` still claimed under ``token``."""
        with self._lock:
            for row_id in ids:
                row = self._rows.get(row_id)
                if row is not None and row.claim_token == token:
                    del self._rows[row_id]

    def mark_failed(self, token: str, ids: Sequence[str], retry_in: float) -> None:
        """Release rows ``ids`` claimed under ``token`` with one more attempt, claimable after ``retry_in``."""
        with self._lock:
            now = self.clock()
            for row_id in ids:
                row = self._rows.get(row_id)
                if row is not None and row.claim_token == token:
                    row.attempts += 1
                    row.claim_token, row.claimed_until = None, now + retry_in

    def pending(self) -> int:
        """How many rows are stored (claimed or not)."""
        with self._lock:
            return len(self._rows)
