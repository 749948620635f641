"""The OutboxStore contract (:mod:`eventbus.testing.contracts.outbox`): in-memory, Django and SQLAlchemy, the ORMs on
SQLite and PostgreSQL; plus each adapter's own cases.

Each adapter also runs the outbox end to end: ``OutboxPublisher`` writes in the caller's transaction and its relay
sends after the commit, or later through ``drain()`` when the transport was down.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from eventbus.adapters.memory import InMemoryEntityRepository, InMemoryOutboxStore
from eventbus.errors import OutboxError
from eventbus.ports import EntityRepository, OutboxStore
from eventbus.testing.contracts import OutboxStoreContract
from eventbus.testing.contracts.outbox import item_envelope

# ------------------------------------------------------------------ in-memory


class TestInMemoryOutbox(OutboxStoreContract):
    repository: InMemoryEntityRepository

    def make_store(self) -> OutboxStore:
        self.repository = InMemoryEntityRepository()
        return InMemoryOutboxStore(self.repository)

    def transaction(self) -> AbstractContextManager[None]:
        return self.repository.atomic()

    # Not a case for this adapter: in memory a claim is no database transaction that could join or lock the
    # caller's, and the port gives the store no way to see an open atomic(). Only the database adapters run it.
    test_claim_inside_an_open_caller_transaction_raises = None  # type: ignore[assignment]

    def test_without_a_repository_add_and_on_commit_happen_at_once(self) -> None:
        alone = InMemoryOutboxStore()
        called: list[int] = []
        alone.add([item_envelope(1)])
        alone.on_commit(lambda: called.append(alone.pending()))
        assert called == [1]
        assert len(alone.claim(10, 60).items) == 1

    def test_the_clock_drives_leases(self) -> None:
        now = [1000.0]
        store = InMemoryOutboxStore(clock=lambda: now[0])
        [outbox_id] = store.add([item_envelope(1)])
        assert len(store.claim(10, 5).items) == 1
        now[0] += 4.9
        assert store.claim(10, 5).items == []
        now[0] += 0.2
        assert [item.id for item in store.claim(10, 5).items] == [outbox_id]


# ------------------------------------------------------------------ Django


class DjangoOutboxContract(OutboxStoreContract):
    alias: str
    repository: EntityRepository

    @pytest.fixture(autouse=True)
    def _database(self, django_ready: None, django_alias: str) -> None:
        from django.core.management import call_command

        self.alias = django_alias
        call_command("migrate", database=self.alias, verbosity=0)

    def make_store(self) -> OutboxStore:
        from eventbus.adapters.django_orm import DjangoEntityRepository
        from eventbus.adapters.django_orm.outbox import DjangoOutboxStore

        self.repository = DjangoEntityRepository(using=self.alias)
        return DjangoOutboxStore(using=self.alias)

    def transaction(self) -> AbstractContextManager[None]:
        return self.repository.atomic()

    def clear(self) -> None:
        from eventbus.adapters.django_orm.models import OutboxMessage

        OutboxMessage.objects.using(self.alias).all().delete()

    def thread_done(self) -> None:
        from django.db import connections

        connections.close_all()  # this thread's connections only

    def test_a_nested_atomic_block_counts_as_open(self) -> None:
        from django.db import transaction

        _ = self.store  # made and emptied before the transaction opens
        with transaction.atomic(using=self.alias), transaction.atomic(using=self.alias), pytest.raises(OutboxError):
            self.store.claim(10, 60)


class TestDjangoOutboxOnSqlite(DjangoOutboxContract):
    @pytest.fixture
    def django_alias(self) -> str:
        return "default"


@pytest.mark.integration
@pytest.mark.postgres
class TestDjangoOutboxOnPostgres(DjangoOutboxContract):
    @pytest.fixture
    def django_alias(self, postgres_url: str) -> str:
        return "postgres"


# ------------------------------------------------------------------ SQLAlchemy


class SqlAlchemyOutboxContract(OutboxStoreContract):
    engine: Any
    repository: EntityRepository

    @pytest.fixture(autouse=True)
    def _engine(self, engine: Any) -> None:
        self.engine = engine

    def make_store(self) -> OutboxStore:
        from sqlalchemy.orm import sessionmaker

        from eventbus.adapters.sqlalchemy import SqlAlchemyEntityRepository
        from eventbus.adapters.sqlalchemy.outbox import SqlAlchemyOutboxStore

        factory = sessionmaker(self.engine, expire_on_commit=False)
        self.repository = SqlAlchemyEntityRepository(factory)
        return SqlAlchemyOutboxStore(factory, self.repository)

    def transaction(self) -> AbstractContextManager[None]:
        return self.repository.atomic()

    def clear(self) -> None:
        from sqlalchemy import delete

        from eventbus.adapters.sqlalchemy.tables import outbox

        with self.engine.begin() as connection:
            connection.execute(delete(outbox))

    def test_a_store_without_repository_commits_at_once(self) -> None:
        from sqlalchemy.orm import sessionmaker

        from eventbus.adapters.sqlalchemy.outbox import SqlAlchemyOutboxStore

        _ = self.store  # the table emptied first
        alone = SqlAlchemyOutboxStore(sessionmaker(self.engine))
        called: list[int] = []
        alone.add([item_envelope(1)])
        alone.on_commit(lambda: called.append(alone.pending()))
        assert called == [1]
        assert len(alone.claim(10, 60).items) == 1


class TestSqlAlchemyOutboxOnSqlite(SqlAlchemyOutboxContract):
    @pytest.fixture
    def engine(self, tmp_path: Path) -> Iterator[Any]:
        from sqlalchemy import create_engine

        from eventbus.adapters.sqlalchemy.tables import metadata

        engine = create_engine(f"sqlite:///{tmp_path / 'outbox.sqlite3'}")
        metadata.create_all(engine)
        yield engine
        engine.dispose()

    def test_driver_errors_are_wrapped_without_the_body(self, tmp_path: Path) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.orm import sessionmaker

        from eventbus.adapters.sqlalchemy.outbox import SqlAlchemyOutboxStore

        bare = create_engine(f"sqlite:///{tmp_path / 'no-tables.sqlite3'}")  # no eventbus_outbox table
        store = SqlAlchemyOutboxStore(sessionmaker(bare))
        try:
            for call in (lambda: store.add([item_envelope(1)]), lambda: store.claim(1, 60), store.pending):
                with pytest.raises(OutboxError) as caught:
                    call()
                assert caught.value.__cause__ is not None
                assert "OperationalError" in str(caught.value)
                assert "item" not in str(caught.value)
        finally:
            bare.dispose()


#: The SQLAlchemy PostgreSQL tests keep their tables in a schema of their own: ``public.eventbus_outbox`` belongs to
#: the Django migrations (create_all there first would make ``migrate`` fail on a fresh database).
PG_SCHEMA = "eventbus_sqlalchemy_outbox_contract"


@pytest.fixture(scope="module")
def sqlalchemy_postgres_engine(postgres_url: str) -> Iterator[Any]:
    """An engine whose search_path is a scratch schema holding eventbus's tables; dropped afterwards."""
    from sqlalchemy import create_engine, text

    from eventbus.adapters.sqlalchemy.tables import metadata

    url = postgres_url.replace("postgresql://", "postgresql+psycopg://")
    admin = create_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {PG_SCHEMA}"))
    engine = create_engine(url, connect_args={"options": f"-c search_path={PG_SCHEMA}"})
    metadata.create_all(engine)
    yield engine
    engine.dispose()
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE"))
    admin.dispose()


@pytest.mark.integration
@pytest.mark.postgres
class TestSqlAlchemyOutboxOnPostgres(SqlAlchemyOutboxContract):
    @pytest.fixture
    def engine(self, sqlalchemy_postgres_engine: Any) -> Any:
        return sqlalchemy_postgres_engine
