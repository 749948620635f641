"""The OutboxStore port's contract suite, and the outbox end to end on the store.

Subclass :class:`OutboxStoreContract`, name the subclass ``Test...`` and implement two hooks::

    class TestMyOutbox(OutboxStoreContract):
        def make_store(self) -> OutboxStore:
            ...  # the store under test

        def transaction(self) -> AbstractContextManager[None]:
            ...  # the caller's transaction that ``add`` joins, e.g. ``repository.atomic()`` of the same ORM

Optional: override :meth:`~OutboxStoreContract.clear` when the storage outlives a test (a database table: delete
every row), and :meth:`~OutboxStoreContract.thread_done` to clean up after the suite's worker threads. ``make_store``
is called once per test, before any transaction opens; the suite then clears the store and checks it is empty.

Collection: a subclass runs when its name starts with ``Test`` (``__test__`` is set from the name, unless the class sets
it), so an intermediate subclass named otherwise runs nothing. Set-up the adapter needs (a database, migrations,
settings) goes in the hooks or in the subclass's own pytest fixtures, which run before each test body.

The end-to-end tests run ``OutboxPublisher`` and ``OutboxRelay`` on the store: it writes in the caller's transaction,
and the relay sends after the commit, or later through ``drain()`` when the transport was down.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from functools import cached_property

import pytest

from eventbus.adapters.memory import InMemoryPublisher
from eventbus.core.envelope import Envelope, decode_message_body
from eventbus.core.outbox import OutboxPublisher, OutboxRelay
from eventbus.core.payload import EventPayload
from eventbus.core.publishing import EventPublisher
from eventbus.errors import EnvelopeError, EnvelopeRejection, OutboxError, PublishError
from eventbus.ports import OutboxStore
from eventbus.testing.contracts.base import Contract

__all__ = ["ItemStoredPayload", "OutboxStoreContract", "RefusingPublisher", "item_envelope"]


class Boom(Exception):
    """Raised on purpose inside a transaction."""


class ItemStoredPayload(EventPayload):
    """The suite's event (``itemStored``)."""

    name: str
    n: int


_ENVELOPES = EventPublisher(InMemoryPublisher(), "svc")


def item_envelope(n: int) -> Envelope:
    """A real envelope (trace, publish date, personal-data flag) with non-ASCII text, so bodies must round-trip."""
    return _ENVELOPES.envelope(ItemStoredPayload(name=f"item «{n}» ✓", n=n), entity_id=n, authorization="Bearer x")


class RefusingPublisher(InMemoryPublisher):
    """Refuses the events of ``entity_ids`` for what they are (as SNS refuses an event over its size limit)."""

    def __init__(self, entity_ids: set[str]) -> None:
        super().__init__()
        self.entity_ids = entity_ids

    def publish_batch(self, envelopes: Sequence[Envelope]) -> list[str]:
        """Publish the others; raise for the refused ones, naming their positions."""
        refused = [str(n) for n, sent in enumerate(envelopes) if sent.metadata.entity_id in self.entity_ids]
        ids = [self.publish(sent) for sent in envelopes if sent.metadata.entity_id not in self.entity_ids]
        if refused:
            raise PublishError("refused", failed_ids=tuple(refused)) from EnvelopeError(
                EnvelopeRejection.OVERSIZED, "too large"
            )
        return ids


class OutboxStoreContract(Contract):
    """What every OutboxStore must do, alone and under ``OutboxPublisher`` / ``OutboxRelay``."""

    def make_store(self) -> OutboxStore:
        """Hook: the store under test."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_store()")

    def transaction(self) -> AbstractContextManager[None]:
        """Hook: open the caller's transaction, as a callback task opens it; the store's ``add`` joins it."""
        raise NotImplementedError(f"{type(self).__name__} must implement transaction()")

    def clear(self) -> None:
        """Delete every outbox row of this store (needed when its storage outlives a test)."""

    def thread_done(self) -> None:
        """Called at the end of a thread that used the store (e.g. to close its connections)."""

    @cached_property
    def store(self) -> OutboxStore:
        """This test's store (:meth:`make_store`, called once), cleared and checked empty."""
        store = self.make_store()
        self.clear()
        assert store.pending() == 0
        return store

    def caller_transaction(self) -> AbstractContextManager[None]:
        """:meth:`transaction`, after the store was made and emptied (outside it, so a rollback cannot undo that)."""
        _ = self.store
        return self.transaction()

    # ------------------------------------------------------------------ add and the caller's transaction

    def test_add_in_a_committed_transaction_is_pending_and_claimable_with_the_body_unchanged(self) -> None:
        envelopes = [item_envelope(1), item_envelope(2)]
        with self.caller_transaction():
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

        def add_then_fail() -> None:
            with self.caller_transaction():
                self.store.add([item_envelope(1), item_envelope(2)])
                self.store.on_commit(lambda: called.append("committed"))
                raise Boom

        with pytest.raises(Boom):
            add_then_fail()
        assert called == []
        assert self.store.pending() == 0
        assert self.store.claim(10, 60).items == []

    def test_add_outside_a_transaction_is_pending_at_once(self) -> None:
        [outbox_id] = self.store.add([item_envelope(1)])
        assert self.store.pending() == 1
        assert [item.id for item in self.store.claim(10, 60).items] == [outbox_id]

    def test_add_of_nothing_stores_nothing(self) -> None:
        assert self.store.add([]) == []
        assert self.store.pending() == 0

    def test_on_commit_runs_after_the_commit_not_before(self) -> None:
        seen: list[int] = []
        with self.caller_transaction():
            self.store.add([item_envelope(1)])
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
        ids = [self.store.add([item_envelope(n)])[0] for n in range(5)]
        first = self.store.claim(3, 60)
        assert [item.id for item in first.items] == ids[:3]
        second = self.store.claim(3, 60)
        assert [item.id for item in second.items] == ids[3:]
        assert first.token != second.token
        assert self.store.claim(3, 60).items == []
        assert self.store.pending() == 5

    def test_a_claimed_row_is_not_claimed_again_before_its_lease_ends(self) -> None:
        [outbox_id] = self.store.add([item_envelope(1)])
        first = self.store.claim(10, 0.3)
        assert [item.id for item in first.items] == [outbox_id]
        assert self.store.claim(10, 60).items == []
        time.sleep(0.4)
        again = self.store.claim(10, 60)
        assert [item.id for item in again.items] == [outbox_id]
        assert again.token != first.token

    def test_claim_with_ids_returns_only_those(self) -> None:
        ids = self.store.add([item_envelope(n) for n in range(4)])
        batch = self.store.claim(10, 60, ids=[ids[3], ids[1]])
        assert [item.id for item in batch.items] == [ids[1], ids[3]]
        # already claimed and unknown ids are skipped
        assert self.store.claim(10, 60, ids=[ids[1], str(uuid.uuid4())]).items == []
        assert self.store.claim(10, 60, ids=[]).items == []
        assert [item.id for item in self.store.claim(10, 60).items] == [ids[0], ids[2]]

    # ------------------------------------------------------------------ bookkeeping

    def test_mark_sent_deletes_only_the_listed_rows_of_that_token(self) -> None:
        ids = self.store.add([item_envelope(n) for n in range(4)])
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
        [outbox_id] = self.store.add([item_envelope(1)])
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
        [outbox_id] = self.store.add([item_envelope(1)])
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
        ids = set(self.store.add([item_envelope(n) for n in range(40)]))
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

    def test_concurrent_claimers_get_rows_while_rows_are_claimable(self) -> None:
        # OutboxRelay.drain stops at a pass that sent nothing: a claim must not come back empty because another
        # claimer was taking (other) rows at the same moment. Four claimers take batches of 10 in lock-step rounds;
        # while a round starts with at least 4 x 10 unclaimed rows, every claim of it must get rows.
        claimers, limit, total = 4, 10, 120
        ids = set(self.store.add([item_envelope(n) for n in range(total)]))
        rounds = total // (claimers * limit) + 1  # the last round finds nothing left
        got: list[list[list[str]]] = [[[] for _ in range(claimers)] for _ in range(rounds)]
        errors: list[BaseException] = []
        start = threading.Barrier(claimers)

        def claimer(k: int) -> None:
            try:
                for round_ in got:
                    start.wait(timeout=30)
                    round_[k] = [item.id for item in self.store.claim(limit, 60).items]
            except BaseException as exc:
                errors.append(exc)
                start.abort()
            finally:
                self.thread_done()

        threads = [threading.Thread(target=claimer, args=(k,)) for k in range(claimers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        unclaimed, empty = total, []
        for n, round_ in enumerate(got):
            if unclaimed >= claimers * limit:
                empty += [(n, k) for k, claimed in enumerate(round_) if not claimed]
            unclaimed -= sum(len(claimed) for claimed in round_)
        assert empty == [], f"(round, claimer) of claims that came back empty while rows were claimable: {empty}"
        everything = [outbox_id for round_ in got for claimed in round_ for outbox_id in claimed]
        assert len(everything) == len(set(everything)), "a row was claimed twice"
        assert set(everything) == ids

    def test_claim_inside_an_open_caller_transaction_raises(self) -> None:
        with self.caller_transaction(), pytest.raises(OutboxError):
            self.store.claim(10, 60)

    # ------------------------------------------------------------------ end to end

    def test_outbox_publisher_sends_right_after_the_commit(self) -> None:
        transport = InMemoryPublisher()
        publisher = OutboxPublisher(self.store, OutboxRelay(self.store, transport))
        envelopes = [item_envelope(n) for n in range(3)]
        with self.caller_transaction():
            ids = publisher.publish_batch(envelopes)
            assert transport.published == []
        assert len(ids) == 3
        assert transport.published == envelopes
        assert self.store.pending() == 0

    def test_outbox_publisher_sends_nothing_for_a_rolled_back_transaction(self) -> None:
        transport = InMemoryPublisher()
        publisher = OutboxPublisher(self.store, OutboxRelay(self.store, transport))

        def publish_then_fail() -> None:
            with self.caller_transaction():
                publisher.publish(item_envelope(1))
                raise Boom

        with pytest.raises(Boom):
            publish_then_fail()
        assert transport.published == []
        assert self.store.pending() == 0

    def test_outbox_keeps_events_while_the_transport_is_down_and_drain_sends_them_once(self) -> None:
        # max_backoff bounds how long a failed row waits before it may be retried
        relay = OutboxRelay(self.store, InMemoryPublisher(fail_with="down"), max_backoff=0.1)
        publisher = OutboxPublisher(self.store, relay)
        envelopes = [item_envelope(n) for n in range(3)]
        with self.caller_transaction():
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
        ids = self.store.add([item_envelope(n) for n in range(3)])
        report = relay.relay()
        assert (report.sent, report.failed, report.error) == (2, 1, "")
        assert [sent.metadata.entity_id for sent in transport.published] == ["0", "2"]
        assert self.store.pending() == 1
        assert self.store.claim(10, 60).items == []
        time.sleep(0.35)
        assert [(item.id, item.attempts) for item in self.store.claim(10, 60).items] == [(ids[1], 1)]
