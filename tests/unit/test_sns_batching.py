"""SnsPublisher's batches against SNS's limits (10 entries, the topic's ``MaximumMessageSize`` of messages and
attributes per call: 256 KiB by default, 1 MiB at most), on a fake client that enforces them as AWS does; the
publisher's limits (1 MiB an event, 256 KiB a batch by default) and configured ones; and the outbox relay sending
through it."""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from eventbus.adapters.aws import SNS_MAX_PAYLOAD_BYTES, SnsPublisher, longest_publish_batch
from eventbus.adapters.aws.sns import SNS_DEFAULT_PAYLOAD_BYTES
from eventbus.adapters.memory import InMemoryOutboxStore, InMemoryPublisher
from eventbus.container import build_container
from eventbus.core.envelope import MAX_MESSAGE_BYTES, Envelope
from eventbus.core.outbox import OutboxRelay
from eventbus.core.payload import EventPayload
from eventbus.core.publishing import EventPublisher
from eventbus.errors import EnvelopeError, EnvelopeRejection, PublishError
from eventbus.settings import EventBusSettings

TOPIC = "arn:aws:sns:eu-west-2:000000000000:events"
KIB = 1024
MIB = 1024 * KIB


class NotePayload(EventPayload):
    note: str = ""


_ENVELOPES = EventPublisher(InMemoryPublisher(), "svc")


def envelope(n: int, note_bytes: int = 0, fill: str = "x") -> Envelope:
    """An envelope whose note is ``note_bytes`` long in UTF-8 (``fill`` repeated)."""
    return _ENVELOPES.envelope(NotePayload(note=fill * (note_bytes // len(fill.encode()))), entity_id=n)


def sized(n: int, size: int) -> Envelope:
    """An envelope whose SNS message and attributes come to exactly ``size`` bytes."""
    base = envelope(n)  # its note is empty: the rest is overhead
    overhead = entry_bytes({"Message": base.to_json(), "MessageAttributes": attributes_of(base)})
    made = base.model_copy(update={"payload": {"note": "x" * (size - overhead)}})
    assert entry_bytes({"Message": made.to_json(), "MessageAttributes": attributes_of(made)}) == size
    return made


def attributes_of(event: Envelope) -> dict[str, Any]:
    return {"eventName": {"DataType": "String", "StringValue": event.event_name}}


def entry_bytes(entry: dict[str, Any]) -> int:
    """What SNS counts for one entry: the message's UTF-8 bytes, and each attribute's name, type and value."""
    attributes = entry.get("MessageAttributes", {})
    return len(entry["Message"].encode()) + sum(
        len(name.encode()) + len(value["DataType"].encode()) + len(value["StringValue"].encode())
        for name, value in attributes.items()
    )


def error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} (fake)"}}, operation)


class FakeSns:
    """An SNS client that refuses what AWS refuses: more than 10 entries, or more than ``limit`` bytes in one call (the
    topic's ``MaximumMessageSize``: 1 MiB at most)."""

    def __init__(self, limit: int = SNS_MAX_PAYLOAD_BYTES) -> None:
        self.limit = limit
        self.batches: list[list[dict[str, Any]]] = []
        self.published: list[dict[str, Any]] = []
        self.unreachable_after: int | None = None
        self._lock = threading.Lock()

    def publish_batch(self, *, TopicArn: str, PublishBatchRequestEntries: list[dict[str, Any]]) -> dict[str, Any]:
        entries = PublishBatchRequestEntries
        with self._lock:
            if self.unreachable_after is not None and len(self.batches) >= self.unreachable_after:
                raise EndpointConnectionError(endpoint_url="https://sns.eu-west-2.amazonaws.com")
            if len(entries) > 10:
                raise error("TooManyEntriesInBatchRequest", "PublishBatch")
            if sum(entry_bytes(entry) for entry in entries) > self.limit:
                raise error("BatchRequestTooLong", "PublishBatch")
            self.batches.append(entries)
        return {"Successful": [{"Id": e["Id"], "MessageId": str(uuid.uuid4())} for e in entries], "Failed": []}

    def publish(self, *, TopicArn: str, Message: str, MessageAttributes: dict[str, Any]) -> dict[str, Any]:
        entry = {"Message": Message, "MessageAttributes": MessageAttributes}
        if entry_bytes(entry) > self.limit:
            raise error("InvalidParameter", "Publish")
        self.published.append(entry)
        return {"MessageId": str(uuid.uuid4())}

    def sent_entity_ids(self) -> list[str]:
        return [Envelope.model_validate_json(e["Message"]).metadata.entity_id for b in self.batches for e in b]


def sns_publisher(client: FakeSns, **options: Any) -> SnsPublisher:
    return SnsPublisher(client, topic_arn=TOPIC, **options)  # type: ignore[arg-type]


def test_the_default_limits_are_1_mib_an_event_on_both_sides_and_256_kib_a_batch() -> None:
    assert SNS_MAX_PAYLOAD_BYTES == MAX_MESSAGE_BYTES == EventBusSettings().max_message_bytes == 1_048_576
    publisher = sns_publisher(FakeSns())
    assert SNS_DEFAULT_PAYLOAD_BYTES == 256 * KIB
    assert (publisher.max_message_bytes, publisher.max_batch_bytes) == (MIB, 256 * KIB)


def test_ten_events_of_30_kib_are_split_into_calls_a_topic_left_at_its_default_takes() -> None:
    client = FakeSns(limit=SNS_DEFAULT_PAYLOAD_BYTES)
    envelopes = [envelope(n, 30 * KIB) for n in range(10)]

    ids = sns_publisher(client).publish_batch(envelopes)

    assert len(ids) == 10
    assert all(ids)
    assert len(client.batches) == 2
    assert all(sum(entry_bytes(e) for e in batch) <= SNS_DEFAULT_PAYLOAD_BYTES for batch in client.batches)
    assert client.sent_entity_ids() == [str(n) for n in range(10)]


def test_events_too_large_to_share_a_call_go_alone() -> None:
    client = FakeSns()
    envelopes = [envelope(0, 150 * KIB), envelope(1, 150 * KIB), envelope(2, 200), envelope(3, 150 * KIB)]

    sns_publisher(client).publish_batch(envelopes)

    assert [[e["Id"] for e in batch] for batch in client.batches] == [["0"], ["1", "2"], ["3"]]


def test_the_limit_is_a_constructor_argument_counting_utf8_bytes_and_message_attributes() -> None:
    client = FakeSns(limit=10**9)
    envelopes = [envelope(n, 1000, fill="é") for n in range(4)]  # 500 characters, 1000 bytes
    sizes = [entry_bytes({"Message": e.to_json(), "MessageAttributes": {}}) for e in envelopes]
    attributes = len("eventName") + len("String") + len("note")
    assert sizes[0] > 1000

    raw = {"wrapped_delivery": False}  # SNS's own count (what the notification adds is tested below)
    sns_publisher(client, max_message_bytes=2 * (sizes[0] + attributes), **raw).publish_batch(envelopes)
    assert [len(batch) for batch in client.batches] == [2, 2]

    client.batches.clear()
    sns_publisher(client, max_message_bytes=2 * (sizes[0] + attributes) - 1, **raw).publish_batch(envelopes)
    assert [len(batch) for batch in client.batches] == [1, 1, 1, 1]


def test_events_over_the_batch_limit_go_alone_up_to_the_event_limit() -> None:
    client = FakeSns()  # a topic whose MaximumMessageSize is 1 MiB
    envelopes = [envelope(0, 100), envelope(1, 900 * KIB), envelope(2, 300 * KIB), envelope(3, 100)]

    sns_publisher(client).publish_batch(envelopes)

    assert [[e["Id"] for e in batch] for batch in client.batches] == [["0"], ["1"], ["2"], ["3"]]


def test_the_batch_limit_can_be_raised_to_what_the_topic_takes() -> None:
    client = FakeSns()  # a topic whose MaximumMessageSize is 1 MiB
    envelopes = [envelope(n, 100 * KIB) for n in range(12)]

    sns_publisher(client, max_batch_bytes=MIB).publish_batch(envelopes)

    assert [len(batch) for batch in client.batches] == [10, 2]
    assert sns_publisher(client, max_message_bytes=100, max_batch_bytes=MIB).max_batch_bytes == 100


def test_the_former_argument_name_still_works_with_a_deprecation_warning() -> None:
    with pytest.warns(DeprecationWarning, match="max_message_bytes"):
        publisher = sns_publisher(FakeSns(), max_payload_bytes=1000)
    assert (publisher.max_message_bytes, publisher.max_batch_bytes) == (1000, 1000)


def test_a_limit_above_what_sns_takes_counts_as_sns_limit() -> None:
    client = FakeSns()
    publisher = sns_publisher(client, max_message_bytes=4 * MIB)
    assert publisher.max_message_bytes == SNS_MAX_PAYLOAD_BYTES
    publisher.publish_batch([envelope(n, 600 * KIB) for n in range(2)])  # the fake refuses a call over 1 MiB
    assert [len(batch) for batch in client.batches] == [1, 1]


def test_a_configured_lower_limit_is_honoured_for_one_event_and_for_each_batch() -> None:
    # a topic left at SNS's default MaximumMessageSize (256 KiB), and the publisher configured to match
    client = FakeSns(limit=256 * KIB)
    publisher = sns_publisher(client, max_message_bytes=256 * KIB, wrapped_delivery=False)

    with pytest.raises(PublishError) as caught:
        publisher.publish(sized(0, 256 * KIB + 1))
    assert isinstance(caught.value.__cause__, EnvelopeError)
    assert caught.value.__cause__.reason is EnvelopeRejection.OVERSIZED
    assert f"is {256 * KIB + 1} bytes, limit is {256 * KIB}" in str(caught.value)
    assert client.published == []
    publisher.publish(sized(1, 256 * KIB))
    assert len(client.published) == 1

    publisher.publish_batch([envelope(n, 100 * KIB) for n in range(5)])
    assert [len(batch) for batch in client.batches] == [2, 2, 1]
    assert all(sum(entry_bytes(e) for e in batch) <= 256 * KIB for batch in client.batches)


def test_the_container_gives_the_sns_publisher_the_configured_limit() -> None:
    settings = EventBusSettings(publisher="sns", endpoint_url="http://127.0.0.1:9", max_message_bytes=300_000)
    publisher = build_container(settings).transport_publisher()
    assert isinstance(publisher, SnsPublisher)
    assert publisher.max_message_bytes == 300_000


def test_an_event_over_the_limit_fails_by_name_and_size_and_the_others_are_sent() -> None:
    client = FakeSns()
    envelopes = [envelope(0, 100), envelope(1, MIB, fill="secret "), envelope(2, 100)]

    with pytest.raises(PublishError) as caught:
        sns_publisher(client).publish_batch(envelopes)

    assert caught.value.failed_ids == ("1",)
    text = str(caught.value)
    assert "'note'" in text
    assert f"{len(envelopes[1].to_json().encode()) + len('eventNameString') + len('note')} bytes" in text
    assert str(SNS_MAX_PAYLOAD_BYTES) in text
    assert "secret" not in text
    # the refusal is the event's own: retrying cannot help (what the outbox relay needs to know)
    assert isinstance(caught.value.__cause__, EnvelopeError)
    assert caught.value.__cause__.reason is EnvelopeRejection.OVERSIZED
    assert client.sent_entity_ids() == ["0", "2"]


def test_a_failure_of_sns_as_well_is_not_reported_as_a_refusal() -> None:
    client = FakeSns()
    client.unreachable_after = 0
    with pytest.raises(PublishError) as caught:
        sns_publisher(client).publish_batch([envelope(0, MIB), envelope(1)])
    assert set(caught.value.failed_ids) == {"0", "1"}
    assert not isinstance(caught.value.__cause__, EnvelopeError)


def test_publish_of_an_event_over_the_limit_is_refused_before_any_call() -> None:
    client = FakeSns()
    with pytest.raises(PublishError, match=r"'note'.* bytes") as caught:
        sns_publisher(client).publish(envelope(1, MIB, fill="secret "))
    assert "secret" not in str(caught.value)
    assert isinstance(caught.value.__cause__, EnvelopeError)
    assert client.published == []


def test_an_event_of_1_mib_is_sent_and_one_of_1_mib_and_1_byte_refused_before_any_call() -> None:
    client = FakeSns()
    publisher = sns_publisher(client, wrapped_delivery=False)  # every subscription with raw delivery

    publisher.publish(sized(0, MIB))
    publisher.publish_batch([sized(1, MIB)])
    assert len(client.published) == 1
    assert [len(batch) for batch in client.batches] == [1]

    for attempt in (publisher.publish, lambda event: publisher.publish_batch([event])):
        with pytest.raises(PublishError, match=f"is {MIB + 1} bytes, limit is {MIB}") as caught:
            attempt(sized(2, MIB + 1))
        assert isinstance(caught.value.__cause__, EnvelopeError)
        assert caught.value.__cause__.reason is EnvelopeRejection.OVERSIZED
    assert len(client.published) == 1
    assert [len(batch) for batch in client.batches] == [1]


def test_sns_unreachable_fails_this_call_and_every_later_one_without_trying_them() -> None:
    client = FakeSns()
    client.unreachable_after = 1
    envelopes = [envelope(n, 30 * KIB) for n in range(20)]  # 3 calls: 8 + 8 + 4

    with pytest.raises(PublishError) as caught:
        sns_publisher(client).publish_batch(envelopes)

    sent = client.sent_entity_ids()
    assert len(client.batches) == 1
    assert sorted(caught.value.failed_ids, key=int) == [str(n) for n in range(len(sent), 20)]


def test_longest_publish_batch_counts_a_call_per_event_and_every_attempt_and_pause() -> None:
    # botocore standard mode: at most 1 s + 5 s before the 2nd attempt, 2 s + 5 s before the 3rd
    one_call = 3 * (2.0 + 5.0) + (1 + 5) + (2 + 5)
    assert longest_publish_batch(10, connect_timeout=2, read_timeout=5, attempts=3) == 10 * one_call
    assert longest_publish_batch(10, connect_timeout=2, read_timeout=5, attempts=3, topic_lookup=True) == 11 * one_call
    assert longest_publish_batch(4, connect_timeout=1, read_timeout=2, attempts=1) == 4 * 3.0


# ------------------------------------------------------------------ the outbox relay through SNS


def test_the_relay_sends_ten_events_of_30_kib_at_once() -> None:
    client, store = FakeSns(), InMemoryOutboxStore()
    store.add([envelope(n, 30 * KIB) for n in range(10)])

    report = OutboxRelay(store, sns_publisher(client)).relay()

    assert (report.sent, report.failed, report.error) == (10, 0, "")
    assert store.pending() == 0
    assert sorted(client.sent_entity_ids(), key=int) == [str(n) for n in range(10)]


def test_the_relay_keeps_an_event_sns_can_never_take_logs_it_and_sends_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1_000_000.0]
    client, store = FakeSns(), InMemoryOutboxStore(clock=lambda: now[0])
    ids = store.add([envelope(0), envelope(1, MIB, fill="secret "), envelope(2)])
    relay = OutboxRelay(store, sns_publisher(client), max_backoff=2)

    with caplog.at_level(logging.ERROR, logger="eventbus.outbox"):
        report = relay.relay()

    assert (report.sent, report.failed, report.error) == (2, 1, "")  # SNS is fine: no outage to back off from
    assert client.sent_entity_ids() == ["0", "2"]
    assert store.pending() == 1  # kept, not deleted
    [record] = [r for r in caplog.records if ids[1] in r.getMessage()]
    assert "'note'" in record.getMessage()
    assert "bytes" in record.getMessage()
    assert "secret" not in record.getMessage()
    # not retried hot: set aside like an unreadable row (30 x max_backoff), with the attempt counted
    now[0] += 59
    assert store.claim(10, 60).items == []
    now[0] += 2
    assert [(item.id, item.attempts) for item in store.claim(10, 60).items] == [(ids[1], 1)]
