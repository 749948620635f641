"""The SQLite DeduplicationStore: one row ``(key, owner, state, expires_at)`` per key in ``eventbus_dedup``.

Every call opens its own connection, so the store is safe from any thread and from several processes sharing the
file. ``claim`` runs in a ``BEGIN IMMEDIATE`` transaction: it takes SQLite's write lock before it reads, so two
claims never both see the key free. Times come from ``clock`` (epoch seconds; tests may pass a fake one); a record is
expired once ``expires_at`` is before now.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from os import PathLike

from eventbus.errors import DeduplicationError
from eventbus.ports import Claim, DeduplicationStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS eventbus_dedup (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    state TEXT NOT NULL,
    expires_at REAL NOT NULL
)
"""
_UPSERT = """
INSERT INTO eventbus_dedup (key, owner, state, expires_at) VALUES (?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, state = excluded.state, expires_at = excluded.expires_at
"""


class SqliteDeduplicationStore(DeduplicationStore):
    """Deduplication records in the SQLite file ``path`` (created with its table if missing; not ``:memory:``)."""

    def __init__(
        self, path: str | PathLike[str], clock: Callable[[], float] = time.time, *, timeout: float = 30.0
    ) -> None:
        self.path = path
        self.clock = clock
        #: How long a call waits for another connection's write lock before it fails.
        self.timeout = timeout
        with self._transaction("create the table of") as connection:
            connection.execute(_SCHEMA)

    @contextmanager
    def _transaction(self, what: str, key: str = "") -> Iterator[sqlite3.Connection]:
        """A new connection inside ``BEGIN IMMEDIATE``; committed on exit, rolled back on error, then closed.

        Raises:
            DeduplicationError: SQLite failed; the message names ``what`` and ``key``, never the owner.
        """
        try:
            with closing(sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)) as connection:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    yield connection
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                connection.execute("COMMIT")
        except sqlite3.Error as exc:
            raise DeduplicationError(f"{what} {key!r} failed: {type(exc).__name__}") from exc

    def claim(self, key: str, owner: str, lease: float) -> Claim:
        """See :meth:`DeduplicationStore.claim`."""
        with self._transaction("claim of", key) as connection:
            now = self.clock()
            row = connection.execute(
                "SELECT owner, state FROM eventbus_dedup WHERE key = ? AND expires_at >= ?", (key, now)
            ).fetchone()
            if row is not None and row[1] == Claim.DONE.value:
                return Claim.DONE
            if row is not None and row[0] != owner:
                return Claim.IN_PROGRESS
            connection.execute(_UPSERT, (key, owner, Claim.IN_PROGRESS.value, now + lease))
            return Claim.ACQUIRED

    def complete(self, key: str, owner: str, keep_for: float) -> None:
        """See :meth:`DeduplicationStore.complete`."""
        with self._transaction("complete of", key) as connection:
            connection.execute(_UPSERT, (key, owner, Claim.DONE.value, self.clock() + keep_for))

    def release(self, key: str, owner: str) -> None:
        """See :meth:`DeduplicationStore.release`."""
        with self._transaction("release of", key) as connection:
            connection.execute(
                "DELETE FROM eventbus_dedup WHERE key = ? AND owner = ? AND state = ?",
                (key, owner, Claim.IN_PROGRESS.value),
            )

    def purge_expired(self) -> int:
        """See :meth:`DeduplicationStore.purge_expired`."""
        with self._transaction("purge of expired records") as connection:
            return connection.execute("DELETE FROM eventbus_dedup WHERE expires_at < ?", (self.clock(),)).rowcount
