"""run_once on the in-memory store with a fake clock: what runs, what is skipped, what a failing store does; the keys
and owners it is given; the lease keeper that renews a running handler's claim."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest

from eventbus.adapters.memory import InMemoryDeduplicationStore
from eventbus.core.idempotency import LeaseKeeper, dedup_key, dedup_owner, run_once
from eventbus.errors import DeduplicationError, DuplicateInProgress
from eventbus.ports import MAX_ID_LENGTH, Claim


class Boom(Exception):
    pass


class FakeClock:
    """Epoch seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Handler:
    """Counts its calls; raises ``fail`` if given."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.calls = 0
        self.fail = fail

    def __call__(self) -> str:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        return "handled"


class CompleteFails(InMemoryDeduplicationStore):
    def complete(self, key: str, owner: str, keep_for: float) -> None:
        raise DeduplicationError(f"complete of {key!r} failed: OperationalError")


class ClaimFails(InMemoryDeduplicationStore):
    def claim(self, key: str, owner: str, lease: float) -> Claim:
        raise DeduplicationError(f"claim of {key!r} failed: OperationalError")


class ReleaseFails(InMemoryDeduplicationStore):
    def release(self, key: str, owner: str) -> None:
        raise DeduplicationError(f"release of {key!r} failed: OperationalError")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> InMemoryDeduplicationStore:
    return InMemoryDeduplicationStore(clock=clock)


def test_a_new_key_runs_the_handler_and_records_it_done(store: InMemoryDeduplicationStore) -> None:
    handler = Handler()
    assert run_once(store, "evt-1", "m-1", handler) == (Claim.ACQUIRED, "handled")
    assert handler.calls == 1
    assert store.claim("evt-1", "m-2", 10) is Claim.DONE


def test_done_skips_the_handler(store: InMemoryDeduplicationStore) -> None:
    store.claim("evt-1", "m-1", 10)
    store.complete("evt-1", "m-1", 100)
    handler = Handler()
    assert run_once(store, "evt-1", "m-2", handler) == (Claim.DONE, None)
    assert handler.calls == 0


def test_in_progress_raises_duplicate_in_progress_without_calling_the_handler(
    store: InMemoryDeduplicationStore,
) -> None:
    store.claim("evt-1", "m-1", 10)
    handler = Handler()
    with pytest.raises(DuplicateInProgress):
        run_once(store, "evt-1", "m-2", handler)
    assert handler.calls == 0
    assert store.claim("evt-1", "m-3", 10) is Claim.IN_PROGRESS, "the holder keeps its claim"


def test_a_redelivery_of_the_same_message_does_not_take_over_a_live_claim(store: InMemoryDeduplicationStore) -> None:
    # SQS redelivers a message whose visibility lapsed although its first delivery still runs (a failed heartbeat)
    store.claim("evt-1", dedup_owner("m-1"), 10)
    handler = Handler()
    with pytest.raises(DuplicateInProgress):
        run_once(store, "evt-1", dedup_owner("m-1"), handler)
    assert handler.calls == 0


def test_a_handler_exception_releases_the_claim_and_propagates(store: InMemoryDeduplicationStore) -> None:
    with pytest.raises(Boom):
        run_once(store, "evt-1", "m-1", Handler(fail=Boom()))
    retry = Handler()
    assert run_once(store, "evt-1", "m-2", retry) == (Claim.ACQUIRED, "handled")
    assert retry.calls == 1


def test_a_failed_release_is_logged_and_the_handler_exception_still_propagates(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = ReleaseFails(clock=clock)
    with caplog.at_level(logging.WARNING, logger="eventbus.idempotency"), pytest.raises(Boom):
        run_once(store, "evt-1", "m-1", Handler(fail=Boom()), lease=30)
    assert "could not release the claim on evt-1" in caplog.text
    assert store.claim("evt-1", "m-2", 10) is Claim.IN_PROGRESS
    clock.now += 31
    assert store.claim("evt-1", "m-2", 10) is Claim.ACQUIRED, "the claim expires with its lease"


def test_a_store_failing_in_complete_is_logged_and_the_result_returned(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = CompleteFails(clock=clock)
    handler = Handler()
    with caplog.at_level(logging.WARNING, logger="eventbus.idempotency"):
        assert run_once(store, "evt-1", "m-1", handler) == (Claim.ACQUIRED, "handled")
    assert handler.calls == 1
    assert [record.levelno for record in caplog.records] == [logging.WARNING]
    assert "handled evt-1 but could not record it" in caplog.text


def test_a_store_failing_in_claim_propagates_and_the_handler_does_not_run(clock: FakeClock) -> None:
    handler = Handler()
    with pytest.raises(DeduplicationError):
        run_once(ClaimFails(clock=clock), "evt-1", "m-1", handler)
    assert handler.calls == 0


def test_lease_and_keep_for_are_passed_to_the_store(clock: FakeClock, store: InMemoryDeduplicationStore) -> None:
    run_once(store, "evt-1", "m-1", Handler(), lease=5, keep_for=50)
    clock.now += 50
    assert store.claim("evt-1", "m-2", 5) is Claim.DONE, "kept until now + keep_for"
    clock.now += 0.001
    assert store.claim("evt-1", "m-2", 5) is Claim.ACQUIRED, "then forgotten"
    clock.now += 5
    assert store.claim("evt-1", "m-3", 5) is Claim.IN_PROGRESS, "the lease holds until now + lease"
    clock.now += 0.001
    assert store.claim("evt-1", "m-3", 5) is Claim.ACQUIRED, "then lapses"


def test_purge_expired_counts_and_forgets_expired_records(clock: FakeClock, store: InMemoryDeduplicationStore) -> None:
    store.claim("lapsed", "m-1", 5)
    store.complete("handled", "m-1", 5)
    store.claim("live", "m-1", 60)
    clock.now += 10
    assert store.purge_expired() == 2
    assert store.purge_expired() == 0
    assert store.claim("live", "m-2", 60) is Claim.IN_PROGRESS


# ------------------------------------------------------------------ keys and owners


def test_a_short_key_stays_readable() -> None:
    assert dedup_key("billing", "tasks.charge", "evt-1") == "billing:tasks.charge:evt-1"


def test_a_key_of_exactly_255_characters_stays_as_it_is() -> None:
    event_id = "e" * (MAX_ID_LENGTH - len("svc:task:"))
    assert dedup_key("svc", "task", event_id) == f"svc:task:{event_id}"


@pytest.mark.parametrize("length", [MAX_ID_LENGTH - len("svc:task:") + 1, 1_000, 100_000])
def test_a_long_event_id_gives_a_key_of_at_most_255_characters_that_starts_readable(length: int) -> None:
    event_id = "e" * length
    key = dedup_key("svc", "task", event_id)
    assert len(key) <= MAX_ID_LENGTH
    assert key.startswith("svc:task:eeee")
    assert key == dedup_key("svc", "task", event_id), "deterministic: every delivery maps to the same key"


def test_distinct_long_event_ids_give_distinct_keys() -> None:
    base = "e" * 999
    ids = [base + "a", base + "b", "a" + base, base[:500] + "x" + base[500:], base]
    keys = {dedup_key("svc", "task", event_id) for event_id in ids}
    assert len(keys) == len(ids)
    assert dedup_key("svc", "task-a", base) != dedup_key("svc", "task-b", base), "the handler is part of the key"


def test_long_service_and_handler_names_fit_too() -> None:
    assert len(dedup_key("s" * 300, "t" * 300, "evt-1")) <= MAX_ID_LENGTH


@pytest.mark.parametrize("event_id", ["evt\x00-1", "evt\ud800-1", "evt\n-1", "evt\u2028-1"])
def test_an_event_id_a_database_may_refuse_gives_a_digest(event_id: str) -> None:
    # NUL and lone surrogates cannot be stored in PostgreSQL text; line breaks would forge log lines
    key = dedup_key("svc", "task", event_id)
    assert key.isprintable()
    assert key.startswith("svc:task:evt")
    assert key == dedup_key("svc", "task", event_id)
    assert key != dedup_key("svc", "task", "evt-1")


def test_an_owner_is_unique_per_execution_and_fits() -> None:
    owners = {dedup_owner("m-1") for _ in range(100)}
    assert len(owners) == 100
    assert all(owner.startswith("m-1") and len(owner) <= MAX_ID_LENGTH for owner in owners)
    long_owner = dedup_owner("m" * 1_000)
    assert len(long_owner) <= MAX_ID_LENGTH
    assert long_owner.startswith("mmm")


# ------------------------------------------------------------------ lease renewal


class Recording(InMemoryDeduplicationStore):
    """Counts claims; raises ``fail`` from claim once it is set."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.claims = 0
        self.fail: BaseException | None = None

    def claim(self, key: str, owner: str, lease: float) -> Claim:
        self.claims += 1
        if self.fail is not None:
            raise self.fail
        return super().claim(key, owner, lease)


@pytest.fixture
def keeper(clock: FakeClock) -> LeaseKeeper:
    return LeaseKeeper(clock=clock, thread=False)


def test_a_held_claim_is_renewed_every_third_of_its_lease(clock: FakeClock, keeper: LeaseKeeper) -> None:
    store = Recording(clock)
    store.claim("evt-1", "m-1/a", 30)
    with keeper.holding(store, "evt-1", "m-1/a", 30):
        clock.now += 9
        keeper.renew_due()
        assert store.claims == 1, "not due yet"
        clock.now += 1
        keeper.renew_due()
        assert store.claims == 2
        clock.now += 25  # the original lease is long gone, the renewed one is not
        assert store.claim("evt-1", "m-2/b", 30) is Claim.IN_PROGRESS
        keeper.renew_due()
        clock.now += 10
        keeper.renew_due()
        assert store.claims == 5
    clock.now += 10
    keeper.renew_due()
    assert store.claims == 5, "no renewal once the handler returned"
    assert len(keeper) == 0


def test_a_claim_taken_by_another_owner_is_not_renewed_and_warned_about(
    clock: FakeClock, keeper: LeaseKeeper, caplog: pytest.LogCaptureFixture
) -> None:
    store = Recording(clock)
    store.claim("evt-1", "m-1/a", 30)
    with caplog.at_level(logging.WARNING, logger="eventbus.idempotency"), keeper.holding(store, "evt-1", "m-1/a", 30):
        clock.now += 31  # the holder could not renew in time (a frozen process): another delivery takes over
        assert store.claim("evt-1", "m-1/b", 30) is Claim.ACQUIRED
        keeper.renew_due()
        assert store.claim("evt-1", "m-2/c", 30) is Claim.IN_PROGRESS, "the new holder keeps it"
        clock.now += 10
        keeper.renew_due()
    assert store.claims == 4, "renewed no more after it was lost"
    assert [record.levelno for record in caplog.records] == [logging.WARNING]
    assert "lost the claim on evt-1" in caplog.text


def test_a_failing_renewal_is_warned_about_and_retried(
    clock: FakeClock, keeper: LeaseKeeper, caplog: pytest.LogCaptureFixture
) -> None:
    store = Recording(clock)
    store.claim("evt-1", "m-1/a", 30)
    with caplog.at_level(logging.WARNING, logger="eventbus.idempotency"), keeper.holding(store, "evt-1", "m-1/a", 30):
        store.fail = DeduplicationError("claim of 'evt-1' failed: OperationalError")
        clock.now += 10
        keeper.renew_due()
        store.fail = RuntimeError("a bug in a store")
        clock.now += 10
        keeper.renew_due()
        store.fail = None
        clock.now += 9
        keeper.renew_due()
        assert store.claim("evt-1", "m-2/b", 30) is Claim.IN_PROGRESS
    assert caplog.text.count("could not renew the claim on evt-1") == 2
    assert [record.levelno for record in caplog.records] == [logging.WARNING, logging.WARNING]


def test_run_once_renews_while_the_handler_runs_and_stops_when_it_returns(
    clock: FakeClock, store: InMemoryDeduplicationStore, keeper: LeaseKeeper
) -> None:
    def handler() -> str:
        assert len(keeper) == 1
        for _ in range(10):  # a handler running 100 s on a 30 s lease
            clock.now += 10
            keeper.renew_due()
            assert store.claim("evt-1", "m-2/b", 30) is Claim.IN_PROGRESS
        return "handled"

    assert run_once(store, "evt-1", "m-1/a", handler, lease=30, keeper=keeper) == (Claim.ACQUIRED, "handled")
    assert len(keeper) == 0
    assert store.claim("evt-1", "m-2/b", 30) is Claim.DONE


def test_run_once_stops_renewing_before_it_releases(
    clock: FakeClock, store: InMemoryDeduplicationStore, keeper: LeaseKeeper
) -> None:
    with pytest.raises(Boom):
        run_once(store, "evt-1", "m-1/a", Handler(fail=Boom()), lease=30, keeper=keeper)
    assert len(keeper) == 0
    clock.now += 10
    keeper.renew_due()
    assert store.claim("evt-1", "m-2/b", 30) is Claim.ACQUIRED, "released, and not claimed again by a renewal"


#: A real lease for the keeper's thread: renewed every 0.2 s, so a renewal may come 0.4 s late and still hold.
REAL_LEASE = 0.6


def test_the_keeper_thread_renews_with_real_time_and_stops_with_the_handler() -> None:
    store = InMemoryDeduplicationStore()
    keeper = LeaseKeeper()
    renewed = threading.Event()

    class Watched(InMemoryDeduplicationStore):
        def claim(self, key: str, owner: str, lease: float) -> Claim:
            renewed.set()
            return store.claim(key, owner, lease)

    try:
        store.claim("evt-1", "m-1/a", REAL_LEASE)
        with keeper.holding(Watched(), "evt-1", "m-1/a", REAL_LEASE):
            time.sleep(REAL_LEASE * 2)
            assert renewed.is_set()
            assert store.claim("evt-1", "m-2/b", REAL_LEASE) is Claim.IN_PROGRESS
        renewed.clear()
        time.sleep(REAL_LEASE + 0.1)
        assert not renewed.is_set(), "no renewal after the handler returned"
        assert store.claim("evt-1", "m-2/b", REAL_LEASE) is Claim.ACQUIRED, "the lease lapsed"
    finally:
        keeper.close()


def test_the_keeper_thread_serves_concurrent_handlers() -> None:
    store = InMemoryDeduplicationStore()
    keeper = LeaseKeeper()
    errors: list[BaseException] = []

    def handler(n: int) -> None:
        try:
            run_once(store, f"evt-{n}", f"m-{n}/a", lambda: time.sleep(REAL_LEASE * 2), lease=REAL_LEASE, keeper=keeper)
            assert store.claim(f"evt-{n}", f"m-{n}/b", 1) is Claim.DONE
        except BaseException as exc:
            errors.append(exc)

    def thief(n: int) -> None:
        time.sleep(REAL_LEASE * 1.5)
        if store.claim(f"evt-{n}", f"thief-{n}", 1) is not Claim.IN_PROGRESS:
            errors.append(AssertionError(f"evt-{n} was taken while its handler ran"))

    try:
        threads = [threading.Thread(target=f, args=(n,)) for n in range(4) for f in (handler, thief)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    finally:
        keeper.close()
    assert errors == []
    assert len(keeper) == 0


def test_a_forked_child_renews_its_own_claims_only() -> None:
    store = InMemoryDeduplicationStore()
    keeper = LeaseKeeper()
    try:
        store.claim("evt-1", "m-1/a", 30)
        with keeper.holding(store, "evt-1", "m-1/a", 30):
            pid = os.fork()
            if pid == 0:  # the child: the parent's claims are not its own; its own are renewed by its own thread
                code = 1
                try:
                    forgotten = len(keeper) == 0
                    child = InMemoryDeduplicationStore()
                    child.claim("evt-2", "m-2/a", REAL_LEASE)
                    with keeper.holding(child, "evt-2", "m-2/a", REAL_LEASE):
                        time.sleep(REAL_LEASE * 2)
                        kept = child.claim("evt-2", "m-3/b", REAL_LEASE) is Claim.IN_PROGRESS
                    code = 0 if forgotten and kept else 1
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            assert len(keeper) == 1
    finally:
        keeper.close()
