"""Fixtures of the integration tests: executions recorded in PostgreSQL, workers stopped at the end."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

#: The table ``tests.integration.reliability_app`` records executions in (not imported: that registers tasks).
SEEN_TABLE = "eventbus_test_seen"


class Seen:
    """The ``eventbus_test_seen`` rows of one test run."""

    def __init__(self, url: str, run: str) -> None:
        self.url = url
        self.run = run

    def _one(self, sql: str) -> int:
        import psycopg

        with psycopg.connect(self.url) as connection:
            row = connection.execute(sql.format(table=SEEN_TABLE), (self.run,)).fetchone()
        return int(row[0]) if row else 0

    def executions(self) -> int:
        """Rows recorded: one per handler execution."""
        return self._one("select count(*) from {table} where run = %s")

    def distinct(self) -> int:
        """Different events handled at least once."""
        return self._one("select count(distinct n) from {table} where run = %s")


@pytest.fixture
def seen(postgres_url: str) -> Iterator[Seen]:
    """A fresh run id and its ``eventbus_test_seen`` rows (deleted afterwards)."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(
            f"create table if not exists {SEEN_TABLE} (run text, n int, pid int, message_id text, "
            "at timestamptz default now())"
        )
    run = uuid.uuid4().hex
    yield Seen(postgres_url, run)
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f"delete from {SEEN_TABLE} where run = %s", (run,))
