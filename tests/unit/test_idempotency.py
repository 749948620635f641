"""run_once on the in-memory store with a fake clock: what runs, what is skipped, what a failing store does."""

from __future__ import annotations

import logging

import pytest

from eventbus.adapters.memory_dedup import InMemoryDeduplicationStore
from eventbus.core.idempotency import Claim, DeduplicationError, DuplicateInProgress, run_once


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


def test_the_same_delivery_takes_over_its_own_claim(store: InMemoryDeduplicationStore) -> None:
    store.claim("evt-1", "m-1", 10)
    handler = Handler()
    assert run_once(store, "evt-1", "m-1", handler) == (Claim.ACQUIRED, "handled")
    assert handler.calls == 1


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
