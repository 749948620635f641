"""The OutboxStore port's contract: in-memory, Django and SQLAlchemy, the ORMs on SQLite and PostgreSQL.

Each adapter also runs the outbox end to end: ``OutboxPublisher`` writes in the caller's transaction and its relay
sends after the commit, or later through ``drain()`` when the transport was down.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from eventbus.adapters.memory import InMemoryPublisher
from eventbus.adapters.memory_outbox import InMemoryOutboxStore
from eventbus.adapters.memory_repository import InMemoryEntityRepository
from eventbus.core.envelope import Envelope, decode_message_body
from eventbus.core.outbox import OutboxPublisher, OutboxRelay
from eventbus.core.payload import EventPayload
from eventbus.core.publishing import EventPublisher
from eventbus.errors import EnvelopeError, EnvelopeRejection, OutboxError, PublishError
from eventbus.ports import EntityRepository, OutboxStore


class Boom(Exception):
    pass


class ItemStoredPayload(EventPayload):
    name: str
    n: int


_ENVELOPES = EventPublisher(InMemoryPublisher(), "svc")


def envelope(n: int) -> Envelope:
    """A real envelope (trace, publish date, personal-data flag) with non-ASCII text, so bodies must round-trip."""
    return _ENVELOPES.envelope(ItemStoredPayload(name=f"item «{n}» ✓", n=n), entity_id=n, authorization="Bearer x")


class RefusingPublisher(InMemoryPublisher):
    """Refuses the events of ``entity_ids`` for what they are (as SNS refuses an event over its size limit)."""

    def __init__(self, entity_ids: set[str]) -> None:
        super().__init__()
        self.entity_ids = entity_ids

    def publish_batch(self, envelopes: Sequence[Envelope]) -> list[str]:
        refused = [str(n) for n, sent in enumerate(envelopes) if sent.metadata.entity_id in self.entity_ids]
        ids = [self.publish(sent) for sent in envelopes if sent.metadata.entity_id not in self.entity_ids]
        if refused:
            raise PublishError("refused", failed_ids=tuple(refused)) from EnvelopeError(
                EnvelopeRejection.OVERSIZED, "too large"
            )
        return ids


class OutboxStoreContract:
    """What every OutboxStore must do. Subclasses set ``store`` and ``repository`` in a ``store_setup`` fixture."""

    __test__ = False
    store: OutboxStore
    #: The unit of work whose transaction ``add`` joins (``transaction()`` opens it).
    repository: EntityRepository

    def transaction(self) -> AbstractContextManager[None]:
        """The caller's transaction, as a callback task opens it."""
        return self.repository.atomic()

    def clear(self) -> None:
        """Delete every outbox row of this store."""
        raise NotImplementedError

    def thread_done(self) -> None:
        """Called at the end of a thread that used the store (to close its connections)."""

    @pytest.fixture(autouse=True)
    def _empty_outbox(self, store_setup: None) -> None:
        self.clear()
        assert self.store.pending() == 0

    # ------------------------------------------------------------------ add and the caller's transaction

    def test_add_in_a_committed_transaction_is_pending_and_claimable_with_the_body_unchanged(self) -> None:
        envelopes = [envelope(1), envelope(2)]
        with self.transaction():
            ids = self.store.add(envelopes)
        assert len(ids) == 2
        assert len(set(ids)) == 2
        assert all(uuid.UUID(outbox_id) for outbox_id in ids)
        assert self.store.pending() == 2
        batch = self.store.claim(10, 60)
        assert [item.id for item in batch.items] == ids
        for item, sent in zip(batch.items, envelopes, strict=True):
            assert item.body == sent.to_json()
            assert decode_message_body(item.body) == sent
            assert item.event_name == "itemStored"
            assert item.attempts == 0

    def test_add_in_a_transaction_that_raises_leaves_nothing_and_drops_on_commit(self) -> None:
        called: list[str] = []
        with pytest.raises(Boom), self.transaction():
            self.store.add([envelope(1), envelope(2)])
            self.store.on_commit(lambda: called.append("committed"))
            raise Boom
        assert called == []
        assert self.store.pending() == 0
        assert self.store.claim(10, 60).items == []

    def test_add_outside_a_transaction_is_pending_at_once(self) -> None:
        [outbox_id] = self.store.add([envelope(1)])
        assert self.store.pending() == 1
        assert [item.id for item in self.store.claim(10, 60).items] == [outbox_id]

    def test_add_of_nothing_stores_nothing(self) -> None:
        assert self.store.add([]) == []
        assert self.store.pending() == 0

    def test_on_commit_runs_after_the_commit_not_before(self) -> None:
        seen: list[int] = []
        with self.transaction():
            self.store.add([envelope(1)])
            self.store.on_commit(lambda: seen.append(self.store.pending()))
            assert seen == []
        # the callback ran once, and the row was already committed (visible to a fresh read) when it did
        assert seen == [1]

    def test_on_commit_outside_a_transaction_runs_at_once(self) -> None:
        called: list[str] = []
        self.store.on_commit(lambda: called.append("now"))
        assert called == ["now"]

    # ------------------------------------------------------------------ claim

    def test_claim_returns_the_oldest_first_and_at_most_limit(self) -> None:
        ids = [self.store.add([envelope(n)])[0] for n in range(5)]
        first = self.store.claim(3, 60)
        assert [item.id for item in first.items] == ids[:3]
        second = self.store.claim(3, 60)
        assert [item.id for item in second.items] == ids[3:]
        assert first.token != second.token
        assert self.store.claim(3, 60).items == []
        assert self.store.pending() == 5

    def test_a_claimed_row_is_not_claimed_again_before_its_lease_ends(self) -> None:
        [outbox_id] = self.store.add([envelope(1)])
        first = self.store.claim(10, 0.3)
        assert [item.id for item in first.items] == [outbox_id]
        assert self.store.claim(10, 60).items == []
        time.sleep(0.4)
        again = self.store.claim(10, 60)
        assert [item.id for item in again.items] == [outbox_id]
        assert again.token != first.token

    def test_claim_with_ids_returns_only_those(self) -> None:
        ids = self.store.add([envelope(n) for n in range(4)])
        batch = self.store.claim(10, 60, ids=[ids[3], ids[1]])
        assert [item.id for item in batch.items] == [ids[1], ids[3]]
        # already claimed and unknown ids are skipped
        assert self.store.claim(10, 60, ids=[ids[1], str(uuid.uuid4())]).items == []
        assert self.store.claim(10, 60, ids=[]).items == []
        assert [item.id for item in self.store.claim(10, 60).items] == [ids[0], ids[2]]

    # ------------------------------------------------------------------ bookkeeping

    def test_mark_sent_deletes_only_the_listed_rows_of_that_token(self) -> None:
        ids = self.store.add([envelope(n) for n in range(4)])
        mine = self.store.claim(2, 60)
        theirs = self.store.claim(2, 60)
        # rows of another token are not touched even when listed
        self.store.mark_sent(mine.token, [mine.items[0].id, *(item.id for item in theirs.items)])
        assert self.store.pending() == 3
        self.store.mark_sent(theirs.token, [item.id for item in theirs.items])
        assert self.store.pending() == 1
        self.store.mark_sent(mine.token, [mine.items[1].id])
        assert self.store.pending() == 0
        assert [item.id for item in mine.items] == ids[:2]

    def test_mark_sent_with_a_stale_token_deletes_nothing(self) -> None:
        [outbox_id] = self.store.add([envelope(1)])
        stale = self.store.claim(10, 0.2)
        time.sleep(0.3)
        current = self.store.claim(10, 60)
        assert [item.id for item in current.items] == [outbox_id]
        self.store.mark_sent(stale.token, [outbox_id])
        assert self.store.pending() == 1
        self.store.mark_failed(stale.token, [outbox_id], 0)
        assert self.store.claim(10, 60).items == []  # still held under the current token
        self.store.mark_sent(current.token, [outbox_id])
        assert self.store.pending() == 0

    def test_mark_failed_counts_an_attempt_and_hides_the_row_for_retry_in(self) -> None:
        [outbox_id] = self.store.add([envelope(1)])
        batch = self.store.claim(10, 60)
        self.store.mark_failed(batch.token, [outbox_id], retry_in=0.4)
        assert self.store.claim(10, 60).items == []
        assert self.store.pending() == 1
        time.sleep(0.5)
        retried = self.store.claim(10, 60)
        assert [(item.id, item.attempts) for item in retried.items] == [(outbox_id, 1)]
        self.store.mark_failed(retried.token, [outbox_id], retry_in=0)
        time.sleep(0.01)
        assert [item.attempts for item in self.store.claim(10, 60).items] == [2]

    def test_concurrent_claimers_never_get_the_same_row_and_together_get_all(self) -> None:
        ids = set(self.store.add([envelope(n) for n in range(40)]))
        got: list[list[str]] = [[] for _ in range(4)]
        errors: list[BaseException] = []
        start = threading.Barrier(4)

        def claimer(k: int) -> None:
            try:
                start.wait(timeout=10)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    batch = self.store.claim(5, 60)
                    if batch.items:
                        claimed = [item.id for item in batch.items]
                        got[k].extend(claimed)
                        self.store.mark_sent(batch.token, claimed)
                    elif self.store.pending() == 0:
                        return
                    else:
                        time.sleep(0.001)  # the rest is held by other claimers, about to be marked sent
                errors.append(TimeoutError("claimers did not empty the outbox in 30 s"))
            except BaseException as exc:
                errors.append(exc)
            finally:
                self.thread_done()

        threads = [threading.Thread(target=claimer, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        everything = [outbox_id for claimed in got for outbox_id in claimed]
        assert len(everything) == len(set(everything)), "a row was claimed twice"
        assert set(everything) == ids

    def test_claim_inside_an_open_caller_transaction_raises(self) -> None:
        with self.transaction(), pytest.raises(OutboxError):
            self.store.claim(10, 60)

    # ------------------------------------------------------------------ end to end

    def test_outbox_publisher_sends_right_after_the_commit(self) -> None:
        transport = InMemoryPublisher()
        publisher = OutboxPublisher(self.store, OutboxRelay(self.store, transport))
        envelopes = [envelope(n) for n in range(3)]
        with self.transaction():
            ids = publisher.publish_batch(envelopes)
            assert transport.published == []
        assert len(ids) == 3
        assert transport.published == envelopes
        assert self.store.pending() == 0

    def test_outbox_publisher_sends_nothing_for_a_rolled_back_transaction(self) -> None:
        transport = InMemoryPublisher()
        publisher = OutboxPublisher(self.store, OutboxRelay(self.store, transport))
        with pytest.raises(Boom), self.transaction():
            publisher.publish(envelope(1))
            raise Boom
        assert transport.published == []
        assert self.store.pending() == 0

    def test_outbox_keeps_events_while_the_transport_is_down_and_drain_sends_them_once(self) -> None:
        # max_backoff bounds how long a failed row waits before it may be retried
        relay = OutboxRelay(self.store, InMemoryPublisher(fail_with="down"), max_backoff=0.1)
        publisher = OutboxPublisher(self.store, relay)
        envelopes = [envelope(n) for n in range(3)]
        with self.transaction():
            publisher.publish_batch(envelopes)
        assert self.store.pending() == 3
        working = InMemoryPublisher()
        relay.transport = working
        time.sleep(0.15)
        report = relay.drain()
        assert (report.sent, report.failed, report.error) == (3, 0, "")
        assert working.published == envelopes
        assert self.store.pending() == 0
        assert relay.drain().sent == 0
        assert len(working.published) == 3

    def test_an_event_the_transport_refuses_stays_in_the_outbox_set_aside_the_others_leave(self) -> None:
        transport = RefusingPublisher({"1"})
        # a refused row waits 30 x max_backoff before it is tried again
        relay = OutboxRelay(self.store, transport, max_backoff=0.01)
        ids = self.store.add([envelope(n) for n in range(3)])
        report = relay.relay()
        assert (report.sent, report.failed, report.error) == (2, 1, "")
        assert [sent.metadata.entity_id for sent in transport.published] == ["0", "2"]
        assert self.store.pending() == 1
        assert self.store.claim(10, 60).items == []
        time.sleep(0.35)
        assert [(item.id, item.attempts) for item in self.store.claim(10, 60).items] == [(ids[1], 1)]


# ------------------------------------------------------------------ in-memory


class TestInMemoryOutbox(OutboxStoreContract):
    __test__ = True

    @pytest.fixture
    def store_setup(self) -> None:
        self.repository = InMemoryEntityRepository()
        self.store = InMemoryOutboxStore(self.repository)

    def clear(self) -> None:
        pass  # a new store per test

    # Not a case for this adapter: in memory a claim is no database transaction that could join or lock the
    # caller's, and the port gives the store no way to see an open atomic(). Only the database adapters run it.
    test_claim_inside_an_open_caller_transaction_raises = None  # type: ignore[assignment]

    def test_without_a_repository_add_and_on_commit_happen_at_once(self) -> None:
        alone = InMemoryOutboxStore()
        called: list[int] = []
        alone.add([envelope(1)])
        alone.on_commit(lambda: called.append(alone.pending()))
        assert called == [1]
        assert len(alone.claim(10, 60).items) == 1

    def test_the_clock_drives_leases(self) -> None:
        now = [1000.0]
        store = InMemoryOutboxStore(clock=lambda: now[0])
        [outbox_id] = store.add([envelope(1)])
        assert len(store.claim(10, 5).items) == 1
        now[0] += 4.9
        assert store.claim(10, 5).items == []
        now[0] += 0.2
        assert [item.id for item in store.claim(10, 5).items] == [outbox_id]


# ------------------------------------------------------------------ Django


class DjangoOutboxContract(OutboxStoreContract):
    alias = "default"

    @pytest.fixture
    def store_setup(self, django_ready: None) -> None:
        from django.core.management import call_command

        from eventbus.adapters.django_orm import DjangoEntityRepository
        from eventbus.adapters.django_orm.outbox import DjangoOutboxStore

        call_command("migrate", database=self.alias, verbosity=0)
        self.repository = DjangoEntityRepository(using=self.alias)
        self.store = DjangoOutboxStore(using=self.alias)

    def clear(self) -> None:
        from eventbus.adapters.django_orm.models import OutboxMessage

        OutboxMessage.objects.using(self.alias).all().delete()

    def thread_done(self) -> None:
        from django.db import connections

        connections.close_all()  # this thread's connections only

    def test_a_nested_atomic_block_counts_as_open(self) -> None:
        from django.db import transaction

        with transaction.atomic(using=self.alias), transaction.atomic(using=self.alias), pytest.raises(OutboxError):
            self.store.claim(10, 60)


class TestDjangoOutboxOnSqlite(DjangoOutboxContract):
    __test__ = True


@pytest.mark.integration
@pytest.mark.postgres
class TestDjangoOutboxOnPostgres(DjangoOutboxContract):
    __test__ = True
    alias = "postgres"

    @pytest.fixture(autouse=True)
    def _needs_postgres(self, postgres_url: str) -> None:
        pass


# ------------------------------------------------------------------ SQLAlchemy


class SqlAlchemyOutboxContract(OutboxStoreContract):
    engine: Any

    @pytest.fixture
    def store_setup(self, engine: Any) -> None:
        from sqlalchemy.orm import sessionmaker

        from eventbus.adapters.sqlalchemy import SqlAlchemyEntityRepository
        from eventbus.adapters.sqlalchemy.outbox import SqlAlchemyOutboxStore

        self.engine = engine
        factory = sessionmaker(engine, expire_on_commit=False)
        self.repository = SqlAlchemyEntityRepository(factory)
        self.store = SqlAlchemyOutboxStore(factory, self.repository)

    def clear(self) -> None:
        from sqlalchemy import delete

        from eventbus.adapters.sqlalchemy.tables import outbox

        with self.engine.begin() as connection:
            connection.execute(delete(outbox))

    def test_a_store_without_repository_commits_at_once(self) -> None:
        from sqlalchemy.orm import sessionmaker

        from eventbus.adapters.sqlalchemy.outbox import SqlAlchemyOutboxStore

        alone = SqlAlchemyOutboxStore(sessionmaker(self.engine))
        called: list[int] = []
        alone.add([envelope(1)])
        alone.on_commit(lambda: called.append(alone.pending()))
        assert called == [1]
        assert len(alone.claim(10, 60).items) == 1


class TestSqlAlchemyOutboxOnSqlite(SqlAlchemyOutboxContract):
    __test__ = True

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
            for call in (lambda: store.add([envelope(1)]), lambda: store.claim(1, 60), store.pending):
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
    __test__ = True

    @pytest.fixture
    def engine(self, sqlalchemy_postgres_engine: Any) -> Any:
        return sqlalchemy_postgres_engine
