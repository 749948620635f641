"""eventbus's DeduplicationStore contract, run against this package's SQLite store, plus its own cases."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from eventbus_sqlite_dedup import SqliteDeduplicationStore

from eventbus.errors import DeduplicationError
from eventbus.ports import Claim, DeduplicationStore
from eventbus.testing.contracts import DeduplicationStoreContract


class TestSqliteDeduplicationStore(DeduplicationStoreContract):
    @pytest.fixture(autouse=True)
    def _database(self, tmp_path: Path) -> None:
        self.path = tmp_path / "dedup.sqlite3"

    def make_store(self) -> DeduplicationStore:
        return SqliteDeduplicationStore(self.path)

    def stored(self, key: str) -> bool:
        with closing(sqlite3.connect(self.path)) as connection:
            return connection.execute("SELECT 1 FROM eventbus_dedup WHERE key = ?", (key,)).fetchone() is not None

    def test_the_clock_drives_leases(self) -> None:
        now = [1000.0]
        store = SqliteDeduplicationStore(self.path, clock=lambda: now[0])
        assert store.claim("k", "a", 5) is Claim.ACQUIRED
        now[0] += 4.9
        assert store.claim("k", "b", 5) is Claim.IN_PROGRESS
        now[0] += 0.2
        assert store.claim("k", "b", 5) is Claim.ACQUIRED

    def test_sqlite_errors_are_wrapped_without_the_owner(self) -> None:
        store = SqliteDeduplicationStore(self.path)
        self.path.unlink()
        self.path.mkdir()  # a directory where the file was: SQLite cannot open it
        with pytest.raises(DeduplicationError) as caught:
            store.claim("the-key", "secret-owner", 60)
        assert isinstance(caught.value.__cause__, sqlite3.Error)
        assert "the-key" in str(caught.value)
        assert "secret-owner" not in str(caught.value)
