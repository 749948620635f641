"""A DeduplicationStore for eventbus on SQLite, written outside eventbus against its public ports only."""

from eventbus_sqlite_dedup.store import SqliteDeduplicationStore

__all__ = ["SqliteDeduplicationStore"]
