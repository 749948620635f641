"""OutboxRelay and OutboxPublisher on the in-memory store: partial failures, backoff, unreadable and refused rows, store
errors, the claim's lease against a slow transport."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import replace

import pytest

from eventbus.adapters.aws import longest_publish_batch, sns_client
from eventbus.adapters.memory import InMemoryEntityRepository, InMemoryOutboxStore, InMemoryPublisher
from eventbus.container import build_container
from eventbus.core.envelope import Envelope
from eventbus.core.outbox import DEFAULT_CLAIM_LEASE, LEASE_MARGIN, OutboxPublisher, OutboxRelay, RelayReport
from eventbus.core.payload import EventPayload
from eventbus.core.publishing import EventPublisher
from eventbus.errors import ConfigurationError, EnvelopeError, EnvelopeRejection, OutboxError, PublishError
from eventbus.ports import ClaimedBatch, Publisher
from eventbus.settings import EventBusSettings


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
    """Records what it sends and how often it is called; fails everything while ``down``, or some entities; refuses
    others for what they are (a :class:`PublishError` raised from an :class:`EnvelopeError`, as SNS does for an
    event over its size limit)."""

    def __init__(self) -> None:
        self.calls = 0
        self.sent: list[Envelope] = []
        self.down = False
        self.fail_entities: set[str] = set()
        self.refuse_entities: set[str] = set()
        self._lock = threading.Lock()

    def publish(self, envelope: Envelope) -> str:
        return self.publish_batch([envelope])[0]

    def publish_batch(self, envelopes: Sequence[Envelope]) -> list[str]:
        with self._lock:
            self.calls += 1
            if self.down:
                raise PublishError("broker down", failed_ids=tuple(str(n) for n in range(len(envelopes))))
            failed = [n for n, sent in enumerate(envelopes) if sent.metadata.entity_id in self.fail_entities]
            refused = [n for n, sent in enumerate(envelopes) if sent.metadata.entity_id in self.refuse_entities]
            self.sent.extend(sent for n, sent in enumerate(envelopes) if n not in failed + refused)
            if failed:
                raise PublishError("some entries failed", failed_ids=tuple(str(n) for n in failed + refused))
            if refused:
                raise PublishError("too large", failed_ids=tuple(str(n) for n in refused)) from EnvelopeError(
                    EnvelopeRejection.OVERSIZED, "event 'itemStored' is 1100000 bytes, limit is 1048576"
                )
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


def test_a_row_the_transport_refuses_for_what_it_is_is_kept_aside_and_the_loop_sees_no_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, transport = Clock(), Transport()
    store = InMemoryOutboxStore(clock=clock)
    ids = store.add([envelope(n, note="secret-note") for n in range(3)])
    transport.refuse_entities = {"1"}
    relay = OutboxRelay(store, transport, max_backoff=2)

    with caplog.at_level(logging.ERROR, logger="eventbus.outbox"):
        report = relay.relay()

    assert (report.sent, report.failed, report.error) == (2, 1, "")
    assert entity_ids(transport.sent) == ["0", "2"]
    assert store.pending() == 1  # never deleted unsent
    [record] = [r for r in caplog.records if ids[1] in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert "1100000 bytes" in record.getMessage()
    assert "secret-note" not in record.getMessage()
    # set aside like an unreadable row (30 x max_backoff), not retried after the 0.5 s of a transport failure
    clock.advance(59)
    assert relay.drain() == RelayReport()
    clock.advance(2)
    assert [(item.id, item.attempts) for item in store.claim(10, 60).items] == [(ids[1], 1)]


def test_refused_rows_do_not_stop_a_drain_nor_pause_the_fast_path() -> None:
    clock, transport = Clock(), Transport()
    repository = InMemoryEntityRepository()
    store = InMemoryOutboxStore(repository, clock=clock)
    transport.refuse_entities = {"0"}
    publisher = OutboxPublisher(store, OutboxRelay(store, transport, batch_size=2))

    with repository.atomic():
        publisher.publish_batch([envelope(n) for n in range(5)])
    with repository.atomic():
        publisher.publish_batch([envelope(5)])

    assert entity_ids(transport.sent) == ["1", "2", "3", "4", "5"]
    assert store.pending() == 1


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


# ------------------------------------------------------------------ the claim's lease against a slow transport


class ScaledClock:
    """Real time running ``speed`` times faster: a second of it passes in ``1 / speed`` real seconds."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._start = time.monotonic()

    def __call__(self) -> float:
        return 1_000_000.0 + (time.monotonic() - self._start) * self.speed

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds / self.speed)


class SlowTransport(Transport):
    """A transport that takes ``seconds`` (of ``clock``) for every publish."""

    def __init__(self, clock: ScaledClock, seconds: float) -> None:
        super().__init__()
        self.clock, self.seconds = clock, seconds

    def publish_batch(self, envelopes: Sequence[Envelope]) -> list[str]:
        self.clock.sleep(self.seconds)
        return super().publish_batch(envelopes)


def slowest_sns_call(settings: EventBusSettings) -> float:
    """One SNS call when SNS is slow: every attempt the container's client makes runs into its timeouts."""
    config = sns_client(settings).meta.config
    attempts: int = config.retries["total_max_attempts"]
    return attempts * (config.connect_timeout + config.read_timeout)


def test_the_relays_of_four_workers_send_each_row_once_when_sns_is_as_slow_as_the_client_allows() -> None:
    # the relays as the container builds them (one per worker) on one outbox; every publish takes one SNS call whose
    # attempts all wait out the client's timeouts; time runs 200 times faster than real
    settings = EventBusSettings(publisher="sns", outbox="memory", endpoint_url="http://127.0.0.1:9")
    clock = ScaledClock(speed=200)
    store = InMemoryOutboxStore(clock=clock)
    transport = SlowTransport(clock, slowest_sns_call(settings))
    store.add([envelope(n) for n in range(300)])
    relays = []
    for _ in range(4):
        container = build_container(settings)
        container.outbox_store.override(store)
        container.transport_publisher.override(transport)
        relays.append(container.outbox_relay())

    def work(relay: OutboxRelay) -> None:
        deadline = time.monotonic() + 30
        while store.pending() and time.monotonic() < deadline:
            if not relay.relay().sent:
                time.sleep(0.005)

    threads = [threading.Thread(target=work, args=(relay,)) for relay in relays]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    sent = entity_ids(transport.sent)
    twice = len(sent) - len(set(sent))
    assert twice == 0, f"300 rows, {twice} duplicate send(s)"
    assert sorted(sent, key=int) == [str(n) for n in range(300)]
    assert store.pending() == 0


def test_a_lease_one_pass_could_outlast_is_refused_and_the_default_lease_covers_a_pass() -> None:
    store, transport = InMemoryOutboxStore(), Transport()

    with pytest.raises(ConfigurationError, match=r"lease 100s .*95s to publish"):
        OutboxRelay(store, transport, lease=100, longest_publish=95)

    assert OutboxRelay(store, transport, lease=100, longest_publish=100 - LEASE_MARGIN).lease == 100
    assert OutboxRelay(store, transport).lease == DEFAULT_CLAIM_LEASE
    assert OutboxRelay(store, transport, longest_publish=400).lease == 400 + LEASE_MARGIN


def test_the_lease_of_the_containers_relay_covers_its_sns_clients_slowest_pass() -> None:
    settings = EventBusSettings(publisher="sns", outbox="memory", endpoint_url="http://127.0.0.1:9")
    relay = build_container(settings).outbox_relay()
    longest = longest_publish_batch(
        relay.batch_size,
        connect_timeout=settings.sns_connect_timeout,
        read_timeout=settings.sns_read_timeout,
        attempts=settings.sns_max_attempts,
        topic_lookup=True,
    )
    # a pass sends one claim of batch_size rows; each may need an SNS call of its own
    assert relay.batch_size == settings.outbox_batch_size
    assert relay.lease == longest + LEASE_MARGIN
    assert relay.lease > relay.batch_size * slowest_sns_call(settings)


def test_with_the_claim_check_the_lease_also_covers_storing_each_event_in_s3() -> None:
    from eventbus.adapters.aws.clients import longest_s3_call

    plain = EventBusSettings(publisher="sns", outbox="memory", endpoint_url="http://127.0.0.1:9")
    claimed = plain.model_copy(update={"large_payload_bucket": "large-events"})
    without, with_s3 = (build_container(s).outbox_relay().lease for s in (plain, claimed))
    # each event of a pass may need a PutObject before the publish: the lease must outlast those too
    assert with_s3 == without + plain.outbox_batch_size * longest_s3_call()
    assert longest_s3_call() >= 2 * (2.0 + 10.0)


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
