"""The DeduplicationStore port's contract: in-memory, Django and SQLAlchemy (SQLite and PostgreSQL), and Redis.

Keys are unique per test (uuid), so runs and databases never collide. Expiry is tested with real, short leases.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from eventbus.adapters.memory_dedup import InMemoryDeduplicationStore
from eventbus.core.idempotency import LeaseKeeper, run_once
from eventbus.errors import DeduplicationError
from eventbus.ports import Claim, DeduplicationStore

LONG = 60.0
#: Short enough to keep the file fast, long enough for a store round-trip to finish well inside it.
SHORT = 0.2
#: Waiting this long lets a SHORT lease expire.
PAST_SHORT = SHORT + 0.1
#: A lease renewed every third of itself: a renewal may come up to two thirds late (a loaded machine) and still hold.
RENEWED = 0.6


class Boom(Exception):
    pass


class DeduplicationStoreContract:
    """Every store: claim/complete/release semantics, expiry, purge, one winner among concurrent claims, run_once."""

    __test__ = False
    store: DeduplicationStore
    #: False for stores whose records expire by themselves (``purge_expired`` returns 0).
    purges = True

    def stored(self, key: str) -> bool:
        """True if the store still holds a record for ``key``, expired or not (reads the storage directly)."""
        raise NotImplementedError

    def in_thread_done(self) -> None:
        """Called at the end of every worker thread (e.g. to close the thread's own database connection)."""

    @pytest.fixture
    def key(self) -> str:
        return f"evt-{uuid.uuid4().hex}"

    # ------------------------------------------------------------ claim

    def test_first_claim_is_acquired(self, key: str) -> None:
        assert self.store.claim(key, "a", LONG) is Claim.ACQUIRED

    def test_another_owner_sees_in_progress_while_the_lease_runs(self, key: str) -> None:
        self.store.claim(key, "a", LONG)
        assert self.store.claim(key, "b", LONG) is Claim.IN_PROGRESS
        assert self.store.claim(key, "c", LONG) is Claim.IN_PROGRESS
        # nothing changed: the holder is still a
        self.store.release(key, "b")
        assert self.store.claim(key, "b", LONG) is Claim.IN_PROGRESS

    def test_the_holder_renews_its_claim(self, key: str) -> None:
        assert self.store.claim(key, "a", LONG) is Claim.ACQUIRED
        assert self.store.claim(key, "a", LONG) is Claim.ACQUIRED
        assert self.store.claim(key, "b", LONG) is Claim.IN_PROGRESS

    def test_a_renewal_extends_the_lease(self, key: str) -> None:
        self.store.claim(key, "a", SHORT)
        self.store.claim(key, "a", LONG)
        time.sleep(PAST_SHORT)
        assert self.store.claim(key, "b", LONG) is Claim.IN_PROGRESS

    def test_renewals_refuse_other_owners_for_as_long_as_they_go_on(self, key: str) -> None:
        # the lease keeper renews every third of the lease while the handler runs, here for two leases
        assert self.store.claim(key, "a", RENEWED) is Claim.ACQUIRED
        for _ in range(6):
            time.sleep(RENEWED / 3)
            assert self.store.claim(key, "a", RENEWED) is Claim.ACQUIRED
            assert self.store.claim(key, "b", RENEWED) is Claim.IN_PROGRESS
        time.sleep(RENEWED + 0.1)  # the holder died: its claim lapses one lease after its last renewal
        assert self.store.claim(key, "b", LONG) is Claim.ACQUIRED

    def test_a_renewal_after_the_lease_lapsed_to_another_owner_is_refused(self, key: str) -> None:
        self.store.claim(key, "a", SHORT)
        time.sleep(PAST_SHORT)
        assert self.store.claim(key, "b", LONG) is Claim.ACQUIRED
        assert self.store.claim(key, "a", LONG) is Claim.IN_PROGRESS, "a's renewal finds its claim lost"
        assert self.store.claim(key, "b", LONG) is Claim.ACQUIRED, "b still holds it"
        self.store.complete(key, "b", LONG)
        assert self.store.claim(key, "a", LONG) is Claim.DONE, "a renewal never undoes a completion"

    def test_keys_and_owners_of_255_characters_are_accepted(self, key: str) -> None:
        long_key = key + "k" * (255 - len(key))
        holder, other = "a" * 255, "a" * 254 + "b"
        assert self.store.claim(long_key, holder, LONG) is Claim.ACQUIRED
        assert self.store.claim(long_key, other, LONG) is Claim.IN_PROGRESS
        assert self.store.claim(long_key, holder, LONG) is Claim.ACQUIRED
        self.store.complete(long_key, holder, LONG)
        assert self.store.claim(long_key, other, LONG) is Claim.DONE

    def test_an_expired_lease_is_acquired_by_another_owner(self, key: str) -> None:
        self.store.claim(key, "a", SHORT)
        time.sleep(PAST_SHORT)
        assert self.store.claim(key, "b", LONG) is Claim.ACQUIRED
        assert self.store.claim(key, "a", LONG) is Claim.IN_PROGRESS

    # ------------------------------------------------------------ complete

    def test_a_completed_key_is_done_for_everyone(self, key: str) -> None:
        self.store.claim(key, "a", LONG)
        self.store.complete(key, "a", LONG)
        assert self.store.claim(key, "a", LONG) is Claim.DONE
        assert self.store.claim(key, "b", LONG) is Claim.DONE

    def test_done_expires_after_keep_for(self, key: str) -> None:
        self.store.claim(key, "a", LONG)
        self.store.complete(key, "a", SHORT)
        assert self.store.claim(key, "b", LONG) is Claim.DONE
        time.sleep(PAST_SHORT)
        assert self.store.claim(key, "b", LONG) is Claim.ACQUIRED
        assert self.store.claim(key, "c", LONG) is Claim.IN_PROGRESS

    def test_complete_by_a_non_holder_still_records_done(self, key: str) -> None:
        self.store.claim(key, "a", LONG)
        self.store.complete(key, "b", LONG)
        assert self.store.claim(key, "a", LONG) is Claim.DONE
        assert self.store.claim(key, "c", LONG) is Claim.DONE

    def test_complete_without_a_claim_records_done(self, key: str) -> None:
        self.store.complete(key, "a", LONG)
        assert self.store.claim(key, "b", LONG) is Claim.DONE

    # ------------------------------------------------------------ release

    def test_release_by_the_holder_lets_another_owner_acquire_at_once(self, key: str) -> None:
        self.store.claim(key, "a", LONG)
        self.store.release(key, "a")
        assert self.store.claim(key, "b", LONG) is Claim.ACQUIRED
        assert self.store.claim(key, "a", LONG) is Claim.IN_PROGRESS

    def test_release_by_a_non_holder_changes_nothing(self, key: str) -> None:
        self.store.claim(key, "a", LONG)
        self.store.release(key, "b")
        assert self.store.claim(key, "b", LONG) is Claim.IN_PROGRESS
        assert self.store.claim(key, "a", LONG) is Claim.ACQUIRED

    def test_release_after_complete_changes_nothing(self, key: str) -> None:
        self.store.claim(key, "a", LONG)
        self.store.complete(key, "a", LONG)
        self.store.release(key, "a")
        assert self.store.claim(key, "a", LONG) is Claim.DONE
        assert self.store.claim(key, "b", LONG) is Claim.DONE

    def test_release_of_an_unknown_key_does_nothing(self, key: str) -> None:
        self.store.release(key, "a")
        assert self.store.claim(key, "a", LONG) is Claim.ACQUIRED

    # ------------------------------------------------------------ purge

    def test_purge_removes_expired_records_only(self) -> None:
        lapsed, handled, live, kept = (f"evt-{uuid.uuid4().hex}" for _ in range(4))
        self.store.claim(lapsed, "a", SHORT)
        self.store.claim(handled, "a", LONG)
        self.store.complete(handled, "a", SHORT)
        self.store.claim(live, "a", LONG)
        self.store.complete(kept, "a", LONG)
        time.sleep(PAST_SHORT)

        purged = self.store.purge_expired()

        assert isinstance(purged, int)
        if self.purges:
            assert purged >= 2  # other tests' expired records may go too
        else:
            assert purged == 0
        assert not self.stored(lapsed)
        assert not self.stored(handled)
        assert self.stored(live)
        assert self.stored(kept)
        # expired keys behave as absent, live ones are untouched
        assert self.store.claim(lapsed, "b", LONG) is Claim.ACQUIRED
        assert self.store.claim(handled, "b", LONG) is Claim.ACQUIRED
        assert self.store.claim(live, "b", LONG) is Claim.IN_PROGRESS
        assert self.store.claim(kept, "b", LONG) is Claim.DONE

    # ------------------------------------------------------------ concurrency

    def contend(self, claim: Callable[[str], Claim], contenders: int = 8) -> None:
        """Run ``claim(owner)`` in ``contenders`` threads released at once; assert exactly one ACQUIRED."""
        barrier = threading.Barrier(contenders)
        answers: list[Claim] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def one(owner: str) -> None:
            try:
                barrier.wait(timeout=10)
                answer = claim(owner)
                with lock:
                    answers.append(answer)
            except BaseException as exc:
                with lock:
                    errors.append(exc)
            finally:
                self.in_thread_done()

        threads = [threading.Thread(target=one, args=(f"owner-{i}",)) for i in range(contenders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert errors == []
        assert sorted(answers) == sorted([Claim.ACQUIRED] + [Claim.IN_PROGRESS] * (contenders - 1))

    def test_concurrent_claims_have_exactly_one_winner(self, key: str) -> None:
        self.contend(lambda owner: self.store.claim(key, owner, LONG))

    # ------------------------------------------------------------ run_once

    def test_run_once_runs_the_handler_once_across_deliveries(self, key: str) -> None:
        calls: list[str] = []

        def handler() -> str:
            calls.append("ran")
            return "result"

        results = [run_once(self.store, key, f"delivery-{i}", handler, lease=LONG, keep_for=LONG) for i in range(5)]

        assert calls == ["ran"]
        assert results == [(Claim.ACQUIRED, "result")] + [(Claim.DONE, None)] * 4

    def test_run_once_with_a_lease_keeper_holds_the_claim_past_its_lease(self, key: str) -> None:
        # the keeper renews from its own thread (its own database connection): the handler outlives the lease
        keeper = LeaseKeeper()
        answers: list[Claim] = []

        def handler() -> str:
            for _ in range(4):
                time.sleep(RENEWED / 2)
                answers.append(self.store.claim(key, "delivery-2", LONG))
            return "result"

        try:
            assert run_once(self.store, key, "delivery-1", handler, lease=RENEWED, keep_for=LONG, keeper=keeper) == (
                Claim.ACQUIRED,
                "result",
            )
        finally:
            keeper.close()
        assert answers == [Claim.IN_PROGRESS] * 4
        assert self.store.claim(key, "delivery-3", LONG) is Claim.DONE

    def test_run_once_releases_the_claim_when_the_handler_raises(self, key: str) -> None:
        def failing() -> None:
            raise Boom

        with pytest.raises(Boom):
            run_once(self.store, key, "delivery-1", failing, lease=LONG, keep_for=LONG)
        assert run_once(self.store, key, "delivery-2", lambda: "retried", lease=LONG, keep_for=LONG) == (
            Claim.ACQUIRED,
            "retried",
        )
        assert self.store.claim(key, "delivery-3", LONG) is Claim.DONE

    # ------------------------------------------------------------ keys and owners of @subscribe(idempotent=True)

    def deliver(self, event_id: str, delivery_id: str, handler: Callable[[], Any]) -> Any:
        """One delivery of ``event_id`` through the Celery adapter's ``_run_once``, deduplicated in this store."""
        from dependency_injector import providers

        from eventbus.celery.subscribe import _run_once
        from eventbus.container import build_container, set_container
        from eventbus.settings import EventBusSettings

        container = build_container(EventBusSettings(service="contract", dedup_store="memory", publisher="memory"))
        container.deduplication_store.override(providers.Object(self.store))
        task = SimpleNamespace(name="tests.contract.handle", request=SimpleNamespace(id=delivery_id))
        task.request.eventbus_event_id = event_id
        set_container(container)
        try:
            return _run_once(task, handler)  # type: ignore[arg-type]
        finally:
            set_container(None)

    def test_an_event_id_of_1000_characters_is_handled_once(self) -> None:
        # the producer sets metadata.eventId: any length; the SQL stores' columns hold 255 characters
        base = uuid.uuid4().hex + "x" * 967
        first, second = base + "a", base + "b"
        calls: list[str] = []
        for delivery in ("m-1", "m-2", "m-" + "9" * 1000):
            self.deliver(first, delivery, lambda: calls.append("first"))
        self.deliver(second, "m-4", lambda: calls.append("second"))
        self.deliver(second, "m-5", lambda: calls.append("second"))
        assert calls == ["first", "second"], "each event ran once, and the two did not share a key"

    @pytest.mark.parametrize("character", ["\x00", "\ud800", "\n"], ids=["nul", "lone-surrogate", "newline"])
    def test_an_event_id_any_json_string_can_carry_is_handled_once(self, character: str) -> None:
        # PostgreSQL text cannot hold NUL, UTF-8 cannot encode a lone surrogate: the key must not carry them
        event_id = f"{uuid.uuid4().hex}{character}1"
        calls: list[str] = []
        for delivery in ("m-1", "m-2"):
            self.deliver(event_id, delivery, lambda: calls.append("ran"))
        self.deliver(event_id[:-1] + "2", "m-3", lambda: calls.append("other"))
        assert calls == ["ran", "other"]


def assert_wrapped(caught: pytest.ExceptionInfo[DeduplicationError], key: str, owner: str) -> None:
    """The driver's error is chained, and the message names the key but not the owner."""
    assert caught.value.__cause__ is not None
    assert type(caught.value.__cause__).__name__ in str(caught.value)
    assert key in str(caught.value)
    assert owner not in str(caught.value)


# ------------------------------------------------------------------ in-memory


class TestInMemoryDeduplicationStore(DeduplicationStoreContract):
    __test__ = True

    @pytest.fixture(autouse=True)
    def _store(self) -> None:
        self.store = self.memory = InMemoryDeduplicationStore()

    def stored(self, key: str) -> bool:
        return key in self.memory._records


# ------------------------------------------------------------------ Django


_migrated: set[str] = set()


class DjangoContract(DeduplicationStoreContract):
    alias: str

    @pytest.fixture(autouse=True)
    def _store(self, django_ready: None, django_alias: str) -> None:
        from django.core.management import call_command

        from eventbus.adapters.django_orm.dedup import DjangoDeduplicationStore

        if django_alias not in _migrated:
            call_command("migrate", database=django_alias, verbosity=0)
            _migrated.add(django_alias)
        self.alias = django_alias
        self.store = DjangoDeduplicationStore(using=django_alias)

    def stored(self, key: str) -> bool:
        from eventbus.adapters.django_orm.models import DedupRecord

        return DedupRecord.objects.using(self.alias).filter(key=key).exists()

    def in_thread_done(self) -> None:
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
                self.in_thread_done()
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
    __test__ = True

    @pytest.fixture
    def django_alias(self) -> str:
        return "default"


@pytest.mark.integration
@pytest.mark.postgres
class TestDjangoDeduplicationOnPostgres(DjangoContract):
    __test__ = True

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
                self.in_thread_done()

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
    def _store(self, database_url: str) -> Iterator[None]:
        from sqlalchemy import create_engine
        from sqlalchemy.orm import sessionmaker

        from eventbus.adapters.sqlalchemy.dedup import SqlAlchemyDeduplicationStore
        from eventbus.adapters.sqlalchemy.tables import metadata

        self.engine = create_engine(database_url)
        metadata.create_all(self.engine)
        self.store = SqlAlchemyDeduplicationStore(sessionmaker(self.engine))
        yield
        self.engine.dispose()

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
    __test__ = True

    @pytest.fixture
    def database_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'dedup.sqlite3'}"


@pytest.mark.integration
@pytest.mark.postgres
class TestSqlAlchemyDeduplicationOnPostgres(SqlAlchemyContract):
    __test__ = True

    @pytest.fixture
    def database_url(self, postgres_url: str) -> str:
        return postgres_url.replace("postgresql://", "postgresql+psycopg://")


# ------------------------------------------------------------------ Redis


@pytest.mark.integration
@pytest.mark.redis
class TestRedisDeduplicationStore(DeduplicationStoreContract):
    __test__ = True
    purges = False

    @pytest.fixture(autouse=True)
    def _store(self, redis_url: str) -> Iterator[None]:
        import redis

        from eventbus.adapters.redis_dedup import RedisDeduplicationStore

        self.client: Any = redis.Redis.from_url(redis_url)
        self.prefix = f"eventbus-test:{uuid.uuid4().hex}:"
        self.store = RedisDeduplicationStore(self.client, prefix=self.prefix)
        yield
        leftovers = list(self.client.scan_iter(match=f"{self.prefix}*"))
        if leftovers:
            self.client.delete(*leftovers)
        self.client.close()

    def stored(self, key: str) -> bool:
        return bool(self.client.exists(self.prefix + key))

    def test_records_expire_in_redis(self, key: str) -> None:
        self.store.claim(key, "a", LONG)
        assert 0 < self.client.pttl(self.prefix + key) <= LONG * 1000
        self.store.complete(key, "a", 5.0)
        assert 0 < self.client.pttl(self.prefix + key) <= 5000

    def test_the_factory_connects_to_the_url(self, redis_url: str, key: str) -> None:
        from eventbus.adapters.redis_dedup import redis_deduplication_store

        store = redis_deduplication_store(redis_url)
        try:
            assert store.claim(f"{self.prefix}{key}", "a", SHORT) is Claim.ACQUIRED
            assert store.claim(f"{self.prefix}{key}", "b", SHORT) is Claim.IN_PROGRESS
        finally:
            store.client.delete(f"eventbus:dedup:{self.prefix}{key}")
            store.client.close()

    def test_driver_errors_are_wrapped(self) -> None:
        import redis

        from eventbus.adapters.redis_dedup import RedisDeduplicationStore

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
