"""The DeduplicationStore contract (:mod:`eventbus.testing.contracts.dedup`): in-memory, Django and SQLAlchemy
(SQLite and PostgreSQL), and Redis; plus each adapter's own cases (driver errors, transactions, expiry in Redis).

Keys are unique per test (uuid), so runs and databases never collide. Expiry is tested with real, short leases.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventbus.adapters.memory import InMemoryDeduplicationStore
from eventbus.errors import DeduplicationError
from eventbus.ports import Claim, DeduplicationStore
from eventbus.testing.contracts import DeduplicationStoreContract
from eventbus.testing.contracts.dedup import LONG, SHORT


class Boom(Exception):
    pass


def assert_wrapped(caught: pytest.ExceptionInfo[DeduplicationError], key: str, owner: str) -> None:
    """The driver's error is chained, and the message names the key but not the owner."""
    assert caught.value.__cause__ is not None
    assert type(caught.value.__cause__).__name__ in str(caught.value)
    assert key in str(caught.value)
    assert owner not in str(caught.value)


# ------------------------------------------------------------------ in-memory


class TestInMemoryDeduplicationStore(DeduplicationStoreContract):
    def make_store(self) -> DeduplicationStore:
        self.memory = InMemoryDeduplicationStore()
        return self.memory

    def stored(self, key: str) -> bool:
        return key in self.memory._records


# ------------------------------------------------------------------ Django


_migrated: set[str] = set()


class DjangoContract(DeduplicationStoreContract):
    alias: str

    @pytest.fixture(autouse=True)
    def _database(self, django_ready: None, django_alias: str) -> None:
        from django.core.management import call_command

        if django_alias not in _migrated:
            call_command("migrate", database=django_alias, verbosity=0)
            _migrated.add(django_alias)
        self.alias = django_alias

    def make_store(self) -> DeduplicationStore:
        from eventbus.adapters.django_orm.dedup import DjangoDeduplicationStore

        return DjangoDeduplicationStore(using=self.alias)

    def stored(self, key: str) -> bool:
        from eventbus.adapters.django_orm.models import DedupRecord

        return DedupRecord.objects.using(self.alias).filter(key=key).exists()

    def thread_done(self) -> None:
        from django.db import connections

        connections[self.alias].close()

    def test_claims_inside_an_outer_transaction_keep_it_usable(self, key: str) -> None:
        from django.db import transaction

        from eventbus.adapters.django_orm.models import DedupRecord

        with transaction.atomic(using=self.alias):
            assert self.store.claim(key, "a", LONG) is Claim.ACQUIRED
            # a losing INSERT (IntegrityError) must roll back to its savepoint, not poison the transaction
            assert self.store.claim(key, "b", LONG) is Claim.IN_PROGRESS
            self.store.complete(key, "b", LONG)
            assert DedupRecord.objects.using(self.alias).get(key=key).state == Claim.DONE.value
        assert self.store.claim(key, "c", LONG) is Claim.DONE

    def test_concurrent_claims_inside_caller_transactions_have_exactly_one_winner(self, key: str) -> None:
        from django.db import transaction

        def claim_in_transaction(owner: str) -> Claim:
            # on PostgreSQL the losers' INSERTs wait for the winner's commit, then fail inside the open transaction
            with transaction.atomic(using=self.alias):
                return self.store.claim(key, owner, LONG)

        self.contend(claim_in_transaction)

    def test_losing_an_insert_race_inside_a_caller_transaction_keeps_it_usable(self, key: str) -> None:
        from django.db import transaction

        from eventbus.adapters.django_orm.models import DedupRecord

        inserted, done = threading.Event(), threading.Event()

        def rival() -> None:
            # holds an uncommitted row: PostgreSQL makes our INSERT wait for it, then fail when it commits
            try:
                with transaction.atomic(using=self.alias):
                    DedupRecord.objects.using(self.alias).create(
                        key=key, owner="rival", state=Claim.IN_PROGRESS.value, expires_at=time.time() + LONG
                    )
                    inserted.set()
                    time.sleep(0.3)
            finally:
                inserted.set()
                self.thread_done()
                done.set()

        thread = threading.Thread(target=rival)
        thread.start()
        assert inserted.wait(10)
        with transaction.atomic(using=self.alias):
            assert self.store.claim(key, "a", LONG) is Claim.IN_PROGRESS
            assert DedupRecord.objects.using(self.alias).filter(key=key).count() == 1
        thread.join(10)
        assert done.is_set()

    def test_an_outer_rollback_undoes_the_claim(self, key: str) -> None:
        from django.db import transaction

        with pytest.raises(Boom), transaction.atomic(using=self.alias):
            self.store.claim(key, "a", LONG)
            raise Boom
        assert self.store.claim(key, "b", LONG) is Claim.ACQUIRED


class TestDjangoDeduplicationOnSqlite(DjangoContract):
    @pytest.fixture
    def django_alias(self) -> str:
        return "default"


@pytest.mark.integration
@pytest.mark.postgres
class TestDjangoDeduplicationOnPostgres(DjangoContract):
    @pytest.fixture
    def django_alias(self, postgres_url: str) -> str:
        return "postgres"

    def test_a_thread_whose_connection_broke_reconnects_on_its_next_call(self, key: str, postgres_url: str) -> None:
        # the lease keeper's thread: no request cycle and no Celery task closes a broken connection for it
        import psycopg
        from django.db import connections

        answers: list[object] = []

        def renewals() -> None:
            try:
                answers.append(self.store.claim(key, "a", LONG))
                pid = connections[self.alias].connection.info.backend_pid
                with psycopg.connect(postgres_url, autocommit=True) as admin:  # a restart, a failover, an idle timeout
                    admin.execute("select pg_terminate_backend(%s)", [pid])
                for _ in range(2):
                    try:
                        answers.append(self.store.claim(key, "a", LONG))
                    except DeduplicationError:
                        answers.append(DeduplicationError)
            finally:
                self.thread_done()

        thread = threading.Thread(target=renewals)
        thread.start()
        thread.join(30)
        assert answers == [Claim.ACQUIRED, DeduplicationError, Claim.ACQUIRED]

    def test_driver_errors_are_wrapped(self) -> None:
        key = "k" * 300  # longer than the column: PostgreSQL refuses it
        with pytest.raises(DeduplicationError) as caught:
            self.store.claim(key, "secret-owner", LONG)
        assert_wrapped(caught, key, "secret-owner")


# ------------------------------------------------------------------ SQLAlchemy


class SqlAlchemyContract(DeduplicationStoreContract):
    @pytest.fixture(autouse=True)
    def _engine(self, database_url: str) -> Iterator[None]:
        from sqlalchemy import create_engine

        from eventbus.adapters.sqlalchemy.tables import metadata

        self.engine = create_engine(database_url)
        metadata.create_all(self.engine)
        yield
        self.engine.dispose()

    def make_store(self) -> DeduplicationStore:
        from sqlalchemy.orm import sessionmaker

        from eventbus.adapters.sqlalchemy.dedup import SqlAlchemyDeduplicationStore

        return SqlAlchemyDeduplicationStore(sessionmaker(self.engine))

    def stored(self, key: str) -> bool:
        from sqlalchemy import select

        from eventbus.adapters.sqlalchemy.tables import dedup

        with self.engine.connect() as connection:
            return connection.execute(select(dedup.c.key).where(dedup.c.key == key)).first() is not None

    def test_driver_errors_are_wrapped(self, tmp_path: Path) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.orm import sessionmaker

        from eventbus.adapters.sqlalchemy.dedup import SqlAlchemyDeduplicationStore

        engine = create_engine(f"sqlite:///{tmp_path / 'no-tables.sqlite3'}")
        store = SqlAlchemyDeduplicationStore(sessionmaker(engine))
        try:
            for call in (
                lambda: store.claim("the-key", "secret-owner", LONG),
                lambda: store.complete("the-key", "secret-owner", LONG),
                lambda: store.release("the-key", "secret-owner"),
            ):
                with pytest.raises(DeduplicationError) as caught:
                    call()
                assert_wrapped(caught, "the-key", "secret-owner")
            with pytest.raises(DeduplicationError):
                store.purge_expired()
        finally:
            engine.dispose()


class TestSqlAlchemyDeduplicationOnSqlite(SqlAlchemyContract):
    @pytest.fixture
    def database_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'dedup.sqlite3'}"


@pytest.mark.integration
@pytest.mark.postgres
class TestSqlAlchemyDeduplicationOnPostgres(SqlAlchemyContract):
    @pytest.fixture
    def database_url(self, postgres_url: str) -> str:
        return postgres_url.replace("postgresql://", "postgresql+psycopg://")


# ------------------------------------------------------------------ Redis


@pytest.mark.integration
@pytest.mark.redis
class TestRedisDeduplicationStore(DeduplicationStoreContract):
    purges = False

    @pytest.fixture(autouse=True)
    def _client(self, redis_url: str) -> Iterator[None]:
        import redis

        self.client: Any = redis.Redis.from_url(redis_url)
        self.prefix = f"eventbus-test:{uuid.uuid4().hex}:"
        yield
        leftovers = list(self.client.scan_iter(match=f"{self.prefix}*"))
        if leftovers:
            self.client.delete(*leftovers)
        self.client.close()

    def make_store(self) -> DeduplicationStore:
        from eventbus.adapters.redis import RedisDeduplicationStore

        return RedisDeduplicationStore(self.client, prefix=self.prefix)

    def stored(self, key: str) -> bool:
        return bool(self.client.exists(self.prefix + key))

    def test_records_expire_in_redis(self, key: str) -> None:
        self.store.claim(key, "a", LONG)
        assert 0 < self.client.pttl(self.prefix + key) <= LONG * 1000
        self.store.complete(key, "a", 5.0)
        assert 0 < self.client.pttl(self.prefix + key) <= 5000

    def test_the_factory_connects_to_the_url(self, redis_url: str, key: str) -> None:
        from eventbus.adapters.redis import redis_deduplication_store

        store = redis_deduplication_store(redis_url)
        try:
            assert store.claim(f"{self.prefix}{key}", "a", SHORT) is Claim.ACQUIRED
            assert store.claim(f"{self.prefix}{key}", "b", SHORT) is Claim.IN_PROGRESS
        finally:
            store.client.delete(f"eventbus:dedup:{self.prefix}{key}")
            store.client.close()

    def test_driver_errors_are_wrapped(self) -> None:
        import redis

        from eventbus.adapters.redis import RedisDeduplicationStore

        with socket.socket() as probe:  # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = redis.Redis(port=port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
        store = RedisDeduplicationStore(client)
        for call in (
            lambda: store.claim("the-key", "secret-owner", LONG),
            lambda: store.complete("the-key", "secret-owner", LONG),
            lambda: store.release("the-key", "secret-owner"),
        ):
            with pytest.raises(DeduplicationError) as caught:
                call()
            assert_wrapped(caught, "the-key", "secret-owner")
        assert store.purge_expired() == 0
