"""OutboxRelay and OutboxPublisher on the in-memory store: partial failures, backoff, unreadable rows, store errors."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import replace

import pytest

from eventbus.adapters.memory import InMemoryPublisher
from eventbus.adapters.memory_outbox import InMemoryOutboxStore
from eventbus.adapters.memory_repository import InMemoryEntityRepository
from eventbus.core.envelope import Envelope
from eventbus.core.errors import PublishError
from eventbus.core.outbox import ClaimedBatch, OutboxError, OutboxPublisher, OutboxRelay
from eventbus.core.payload import EventPayload
from eventbus.core.ports import Publisher
from eventbus.core.publishing import EventPublisher


class ItemStoredPayload(EventPayload):
    n: int
    note: str = ""


_ENVELOPES = EventPublisher(InMemoryPublisher(), "svc")


def envelope(n: int, note: str = "") -> Envelope:
    return _ENVELOPES.envelope(ItemStoredPayload(n=n, note=note), entity_id=n)


def entity_ids(envelopes: Sequence[Envelope]) -> list[str]:
    return [sent.metadata.entity_id for sent in envelopes]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Transport(Publisher):
    """Records what it sends and how often it is called; fails everything while ``down``, or some entities."""

    def __init__(self) -> None:
        self.calls = 0
        self.sent: list[Envelope] = []
        self.down = False
        self.fail_entities: set[str] = set()
        self._lock = threading.Lock()

    def publish(self, envelope: Envelope) -> str:
        return self.publish_batch([envelope])[0]

    def publish_batch(self, envelopes: Sequence[Envelope]) -> list[str]:
        with self._lock:
            self.calls += 1
            if self.down:
                raise PublishError("broker down", failed_ids=tuple(str(n) for n in range(len(envelopes))))
            failed = [n for n, sent in enumerate(envelopes) if sent.metadata.entity_id in self.fail_entities]
            self.sent.extend(sent for n, sent in enumerate(envelopes) if n not in failed)
            if failed:
                raise PublishError("some entries failed", failed_ids=tuple(str(n) for n in failed))
            return [f"msg-{n}" for n in range(len(envelopes))]


class CorruptingStore(InMemoryOutboxStore):
    """Hands out the rows named in ``corrupt`` with a body that is not an envelope, as a damaged row would read."""

    def __init__(self, clock: Clock, corrupt_body: str) -> None:
        super().__init__(clock=clock)
        self.corrupt: set[str] = set()
        self.corrupt_body = corrupt_body

    def claim(self, limit: int, lease: float, ids: Sequence[str] | None = None) -> ClaimedBatch:
        batch = super().claim(limit, lease, ids)
        items = [replace(item, body=self.corrupt_body) if item.id in self.corrupt else item for item in batch.items]
        return ClaimedBatch(token=batch.token, items=items)


class BrokenStore(InMemoryOutboxStore):
    """A store whose writes fail."""

    def add(self, envelopes: Sequence[Envelope]) -> list[str]:
        raise OutboxError("outbox add failed: OperationalError")


# ------------------------------------------------------------------ relay


def test_a_partial_batch_failure_sends_the_others_and_keeps_the_failed_with_an_attempt_counted() -> None:
    clock, transport = Clock(), Transport()
    store = InMemoryOutboxStore(clock=clock)
    ids = store.add([envelope(n) for n in range(4)])
    transport.fail_entities = {"1", "3"}

    report = OutboxRelay(store, transport).relay()

    assert (report.sent, report.failed) == (2, 2)
    assert "some entries failed" in report.error
    assert entity_ids(transport.sent) == ["0", "2"]
    assert store.pending() == 2
    assert store.claim(10, 60).items == []  # hidden until the retry delay (0.5 s after a first failure) ends
    clock.advance(0.51)
    retried = store.claim(10, 60)
    assert [(item.id, item.attempts) for item in retried.items] == [(ids[1], 1), (ids[3], 1)]


def test_a_failure_without_positions_fails_the_whole_batch() -> None:
    clock, transport = Clock(), Transport()
    store = InMemoryOutboxStore(clock=clock)
    store.add([envelope(n) for n in range(3)])
    transport.down = True

    report = OutboxRelay(store, transport).relay()

    assert (report.sent, report.failed, report.error) == (0, 3, "broker down")
    assert store.pending() == 3


def test_drain_sends_batch_after_batch_until_nothing_is_left() -> None:
    clock, transport = Clock(), Transport()
    store = InMemoryOutboxStore(clock=clock)
    store.add([envelope(n) for n in range(5)])

    report = OutboxRelay(store, transport, batch_size=2).drain()

    assert (report.sent, report.failed, report.error) == (5, 0, "")
    assert transport.calls == 3
    assert entity_ids(transport.sent) == ["0", "1", "2", "3", "4"]
    assert store.pending() == 0


def test_drain_stops_on_an_error() -> None:
    clock, transport = Clock(), Transport()
    store = InMemoryOutboxStore(clock=clock)
    store.add([envelope(n) for n in range(5)])
    transport.down = True
    relay = OutboxRelay(store, transport, batch_size=2)

    report = relay.drain()

    assert transport.calls == 1  # the other 3 rows were claimable, but a failing transport ends the drain
    assert (report.sent, report.failed, report.error) == (0, 2, "broker down")
    assert store.pending() == 5

    transport.down = False
    clock.advance(1)
    assert relay.drain().sent == 5
    assert store.pending() == 0


def test_drain_stops_after_a_partial_failure_but_keeps_what_it_sent() -> None:
    clock, transport = Clock(), Transport()
    store = InMemoryOutboxStore(clock=clock)
    store.add([envelope(n) for n in range(6)])
    transport.fail_entities = {"1"}

    report = OutboxRelay(store, transport, batch_size=3).drain()

    assert (report.sent, report.failed) == (2, 1)
    assert report.error
    assert transport.calls == 1
    assert store.pending() == 4


@pytest.mark.parametrize("body", ["{not json", '{"hello": "world"}', '{"metadata": {}, "payload": {}}'])
def test_a_row_that_is_not_an_envelope_is_kept_and_not_sent_the_others_are(
    body: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock, transport = Clock(), Transport()
    store = CorruptingStore(clock, body)
    ids = store.add([envelope(n, note="secret-note") for n in range(3)])
    store.corrupt = {ids[1]}
    relay = OutboxRelay(store, transport, max_backoff=2)

    with caplog.at_level(logging.ERROR, logger="eventbus.outbox"):
        report = relay.relay()

    assert (report.sent, report.failed, report.error) == (2, 1, "")
    assert entity_ids(transport.sent) == ["0", "2"]
    assert store.pending() == 1
    [record] = [r for r in caplog.records if "not an envelope" in r.getMessage()]
    assert ids[1] in record.getMessage()
    assert body not in record.getMessage()
    # kept aside far longer than a transport retry (30 x max_backoff), with the attempt counted
    clock.advance(59)
    assert store.claim(10, 60).items == []
    clock.advance(2)
    assert [(item.id, item.attempts) for item in store.claim(10, 60).items] == [(ids[1], 1)]


def test_a_batch_of_only_unreadable_rows_sends_nothing() -> None:
    clock, transport = Clock(), Transport()
    store = CorruptingStore(clock, "[]")
    store.corrupt = set(store.add([envelope(1)]))

    report = OutboxRelay(store, transport).drain()

    assert (report.sent, report.failed, report.error) == (0, 1, "")
    assert transport.calls == 0
    assert store.pending() == 1


def test_a_body_with_a_lone_surrogate_does_not_crash_the_relay() -> None:
    transport = Transport()
    store = InMemoryOutboxStore()
    store.add([envelope(1, note="bad \ud800 text")])

    report = OutboxRelay(store, transport).relay()

    assert report.sent == 1
    assert transport.sent[0].payload["note"] == "bad \ud800 text"


def test_a_failing_claim_is_reported_not_raised() -> None:
    class ClaimFails(InMemoryOutboxStore):
        def claim(self, limit: int, lease: float, ids: Sequence[str] | None = None) -> ClaimedBatch:
            raise OutboxError("outbox claim failed: OperationalError")

    report = OutboxRelay(ClaimFails(), Transport()).drain()

    assert report.error == "outbox claim failed: OperationalError"


# ------------------------------------------------------------------ the relay loop


def _wait_for(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.01)
    return False


def test_run_backs_off_while_the_transport_fails_and_logs_the_outage_and_the_recovery_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = Transport()
    transport.down = True
    store = InMemoryOutboxStore()
    store.add([envelope(n) for n in range(3)])
    relay = OutboxRelay(store, transport, max_backoff=0.4)
    stop = threading.Event()
    caplog.set_level(logging.INFO, logger="eventbus.outbox")
    loop = threading.Thread(target=relay.run, args=(stop, 0.05), daemon=True)

    loop.start()
    try:
        time.sleep(1.5)
        calls_while_down = transport.calls
        # polling every 0.05 s would call ~30 times; doubling up to 0.4 s and the rows' retry delay allow ~5
        assert 1 <= calls_while_down <= 8
        outage = [r for r in caplog.records if "cannot send" in r.getMessage()]
        assert len(outage) == 1
        assert outage[0].levelno == logging.WARNING
        assert not [r for r in caplog.records if "sending again" in r.getMessage()]

        transport.down = False
        assert _wait_for(lambda: store.pending() == 0, timeout=5), "the relay did not send after the recovery"
        time.sleep(0.2)  # a few healthy passes more: they must not log again
    finally:
        stop.set()
        loop.join(5)
    assert not loop.is_alive()
    recovered = [r for r in caplog.records if "sending again" in r.getMessage()]
    assert len(recovered) == 1
    assert "3 event(s) sent" in recovered[0].getMessage()
    assert len([r for r in caplog.records if "cannot send" in r.getMessage()]) == 1
    assert entity_ids(transport.sent) == ["0", "1", "2"]


def test_run_stops_when_asked() -> None:
    relay = OutboxRelay(InMemoryOutboxStore(), Transport())
    stop = threading.Event()
    loop = threading.Thread(target=relay.run, args=(stop, 10.0), daemon=True)
    loop.start()
    time.sleep(0.05)
    stop.set()
    loop.join(2)
    assert not loop.is_alive()


# ------------------------------------------------------------------ publisher


def test_outbox_publisher_wraps_a_store_error_in_publish_error() -> None:
    transport = Transport()
    publisher = OutboxPublisher(BrokenStore(), OutboxRelay(BrokenStore(), transport))

    with pytest.raises(PublishError) as caught:
        publisher.publish(envelope(1))

    assert isinstance(caught.value.__cause__, OutboxError)
    assert "OperationalError" in str(caught.value)
    assert transport.calls == 0


def test_outbox_publisher_returns_outbox_ids_and_relays_after_the_commit() -> None:
    repository, transport = InMemoryEntityRepository(), Transport()
    store = InMemoryOutboxStore(repository)
    publisher = OutboxPublisher(store, OutboxRelay(store, transport))

    with repository.atomic():
        ids = publisher.publish_batch([envelope(1), envelope(2)])
        assert transport.calls == 0
        assert store.pending() == 0  # not stored before the commit

    assert len(ids) == 2
    assert entity_ids(transport.sent) == ["1", "2"]
    assert store.pending() == 0


def test_outbox_publisher_fast_path_sends_more_than_one_relay_batch() -> None:
    repository, transport = InMemoryEntityRepository(), Transport()
    store = InMemoryOutboxStore(repository)
    publisher = OutboxPublisher(store, OutboxRelay(store, transport, batch_size=2))

    with repository.atomic():
        publisher.publish_batch([envelope(n) for n in range(5)])

    assert entity_ids(transport.sent) == ["0", "1", "2", "3", "4"]
    assert store.pending() == 0


def test_outbox_publisher_without_a_relay_only_stores() -> None:
    store = InMemoryOutboxStore()
    publisher = OutboxPublisher(store)

    [outbox_id] = [publisher.publish(envelope(1))]

    assert store.pending() == 1
    assert [item.id for item in store.claim(10, 60).items] == [outbox_id]


def test_outbox_publisher_fast_path_failure_leaves_the_rows_for_the_loop() -> None:
    clock, transport = Clock(), Transport()
    transport.down = True
    repository = InMemoryEntityRepository()
    store = InMemoryOutboxStore(repository, clock=clock)
    relay = OutboxRelay(store, transport)
    publisher = OutboxPublisher(store, relay)

    with repository.atomic():
        publisher.publish_batch([envelope(1), envelope(2)])

    assert store.pending() == 2
    transport.down = False
    clock.advance(1)
    assert relay.drain().sent == 2
    assert entity_ids(transport.sent) == ["1", "2"]
