"""The DeduplicationStore port's contract suite.

Subclass :class:`DeduplicationStoreContract`, name the subclass ``Test...`` and implement two hooks::

    class TestMyStore(DeduplicationStoreContract):
        def make_store(self) -> DeduplicationStore:
            ...  # the store under test, on empty or shared storage (keys are unique per test)

        def stored(self, key: str) -> bool:
            ...  # True if the storage still holds a record for ``key``, expired or not

Optional: set ``purges = False`` for a store whose records expire by themselves (``purge_expired`` returns 0), and
override :meth:`~DeduplicationStoreContract.thread_done` to clean up after the suite's worker threads (e.g. close
the thread's database connection). ``make_store`` is called once per test, on first use, from the test's thread.

Collection: a subclass runs when its name starts with ``Test`` (``__test__`` is set from the name, unless the class sets
it), so an intermediate subclass named otherwise runs nothing. Set-up the adapter needs (a database, a server) goes in
the hooks or in the subclass's own pytest fixtures, which run before each test body.

Expiry is tested with real, short leases (the store's own clock, whichever it is): the suite sleeps, for about 10 s
in all. The tests that deliver through the Celery runtime's deduplication skip when Celery is not installed.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from functools import cached_property
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from eventbus.core.idempotency import LeaseKeeper, run_once
from eventbus.ports import Claim, DeduplicationStore
from eventbus.testing.contracts.base import Contract

__all__ = ["LONG", "PAST_SHORT", "RENEWED", "SHORT", "DeduplicationStoreContract"]

#: A lease or retention that outlasts any test.
LONG = 60.0
#: Short enough to keep the suite fast, long enough for a store round-trip to finish well inside it.
SHORT = 0.2
#: Waiting this long lets a SHORT lease expire.
PAST_SHORT = SHORT + 0.1
#: A lease renewed every third of itself: a renewal may come up to two thirds late (a loaded machine) and still hold.
RENEWED = 0.6


class Boom(Exception):
    """Raised on purpose by a handler."""


class DeduplicationStoreContract(Contract):
    """Every store: claim/complete/release semantics, expiry, purge, one winner among concurrent claims, run_once."""

    #: False for stores whose records expire by themselves (``purge_expired`` returns 0).
    purges: ClassVar[bool] = True

    def make_store(self) -> DeduplicationStore:
        """Hook: the store under test. Keys are unique per test, so the storage may be shared between tests."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_store()")

    def stored(self, key: str) -> bool:
        """Hook: True if the store still holds a record for ``key``, expired or not (reads the storage directly)."""
        raise NotImplementedError(f"{type(self).__name__} must implement stored()")

    def thread_done(self) -> None:
        """Called at the end of every worker thread the suite starts (e.g. to close the thread's own connection)."""

    @cached_property
    def store(self) -> DeduplicationStore:
        """This test's store (:meth:`make_store`, called once)."""
        return self.make_store()

    @pytest.fixture
    def key(self) -> str:
        """A key no other test uses."""
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
        _ = self.store  # made here, once, not by whichever thread comes first
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
                self.thread_done()

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
        """One delivery of ``event_id`` through the Celery adapter's ``_run_once``, deduplicated in this store.

        Skips the test when Celery is not installed (the ``sqs`` extra): the key and owner it derives are the Celery
        runtime's.
        """
        pytest.importorskip("celery", reason="the Celery runtime (pip install 'eventbus[sqs]') derives these keys")
        from dependency_injector import providers

        from eventbus.celery.subscribe import _run_once
        from eventbus.container import build_container, set_container
        from eventbus.settings import EventBusSettings

        container = build_container(EventBusSettings(service="contract", dedup_store="memory", publisher="memory"))
        container.deduplication_store.override(providers.Object(self.store))
        task = SimpleNamespace(name="eventbus.testing.contracts.handle", request=SimpleNamespace(id=delivery_id))
        task.request.eventbus_event_id = event_id
        set_container(container)
        try:
            return _run_once(task, handler)
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
