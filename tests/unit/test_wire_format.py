"""The envelope on the wire: seed round-trips, SNS unwrapping, liberal reading, safe errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Literal

import pytest
from pydantic import Field, field_validator

from eventbus.core.envelope import MAX_MESSAGE_BYTES, Envelope, Metadata, decode_message_body
from eventbus.core.registry import Subscription
from eventbus.errors import EnvelopeError, EnvelopeRejection
from eventbus.payload import EventPayload
from tests.seed import SEED_DO_GOOD, SEED_DO_NICE, SEED_MESSAGES

SECRET = "Bearer s3cr3t-token-value"


def sns_notification(message: str) -> str:
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "5f3b8c1e-0000-4000-8000-000000000000",
            "TopicArn": "arn:aws:sns:eu-west-2:000000000000:local_sns",
            "Message": message,
            "Timestamp": "2021-03-17T16:24:23.800Z",
        }
    )


@pytest.mark.parametrize("seed", SEED_MESSAGES, ids=["doGood", "doNice"])
@pytest.mark.parametrize("wrap", [lambda m: m, sns_notification], ids=["raw", "sns"])
def test_seed_messages_round_trip_unchanged(seed: str, wrap: object) -> None:
    envelope = decode_message_body(wrap(seed))  # type: ignore[operator]
    assert json.loads(envelope.to_json()) == json.loads(seed)
    assert envelope.to_json() == seed  # byte for byte, key order included


def test_metadata_attributes_are_snake_case() -> None:
    metadata = decode_message_body(SEED_DO_NICE).metadata
    assert metadata.contains_personal_data is True
    assert metadata.entity_id == "4123a425-e234-491-bcdf-b5as59cz7611"  # not a valid UUID; kept as text
    assert metadata.publisher_name == "TestPublisher"
    assert metadata.publish_date == datetime(2021, 3, 17, 16, 23, 21, 214293, tzinfo=UTC)


def test_zoned_publish_date_is_converted_and_sent_in_utc_without_zone() -> None:
    metadata = Metadata.model_validate({"eventName": "x", "publishDate": "2021-03-17T18:24:23+02:00"})
    assert metadata.to_wire()["publishDate"] == "2021-03-17T16:24:23"


def test_unknown_metadata_keys_are_kept() -> None:
    body = json.loads(SEED_DO_GOOD)
    body["metadata"]["tenant"] = "acme"
    envelope = decode_message_body(json.dumps(body))
    assert envelope.to_wire()["metadata"]["tenant"] == "acme"


def test_integer_entity_id_becomes_text() -> None:
    assert Metadata.model_validate({"eventName": "x", "entityId": 42}).entity_id == "42"


def test_authorization_round_trips_but_never_prints() -> None:
    body = json.loads(SEED_DO_GOOD)
    body["metadata"]["authorization"] = SECRET
    envelope = decode_message_body(json.dumps(body))
    assert json.loads(envelope.to_json())["metadata"]["authorization"] == SECRET
    for text in (repr(envelope), str(envelope), repr(envelope.metadata), str(envelope.metadata)):
        assert SECRET not in text
    assert envelope.metadata.to_log()["authorization"] == "***"


def test_personal_payload_is_withheld_from_repr() -> None:
    body = json.loads(SEED_DO_NICE)
    body["payload"] = {"email": "jane@example.com"}
    envelope = decode_message_body(json.dumps(body))
    assert "jane@example.com" not in repr(envelope)
    assert envelope.payload == {"email": "jane@example.com"}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{not json", EnvelopeRejection.MALFORMED_JSON),
        (b"\xff\xfe\x00", EnvelopeRejection.MALFORMED_JSON),
        ("[" * 100_000 + "]" * 100_000, EnvelopeRejection.MALFORMED_JSON),  # deep nesting: RecursionError inside
        ('"a string"', EnvelopeRejection.NOT_AN_ENVELOPE),
        ('{"payload": {}}', EnvelopeRejection.NOT_AN_ENVELOPE),
        ('{"metadata": {"eventName": "x"}}', EnvelopeRejection.NOT_AN_ENVELOPE),
        ('{"metadata": {"eventName": "x"}, "payload": [1]}', EnvelopeRejection.NOT_AN_ENVELOPE),
        ('{"metadata": {}, "payload": {}}', EnvelopeRejection.INVALID_METADATA),
        ('{"metadata": {"eventName": ""}, "payload": {}}', EnvelopeRejection.INVALID_METADATA),
        ('{"metadata": {"eventName": 7}, "payload": {}}', EnvelopeRejection.INVALID_METADATA),
        (
            '{"metadata": {"eventName": "x", "publishDate": "yesterday"}, "payload": {}}',
            EnvelopeRejection.INVALID_METADATA,
        ),
        (
            '{"metadata": {"eventName": "x", "containsPersonalData": "maybe"}, "payload": {}}',
            EnvelopeRejection.INVALID_METADATA,
        ),
        (sns_notification("{not json"), EnvelopeRejection.MALFORMED_JSON),
        (
            '{"metadata": {"eventName": "x"}, "payload": {"b": "' + "x" * MAX_MESSAGE_BYTES + '"}}',
            EnvelopeRejection.OVERSIZED,
        ),
    ],
)
def test_bad_bodies_raise_envelope_error_with_a_reason(body: str | bytes, reason: EnvelopeRejection) -> None:
    with pytest.raises(EnvelopeError) as caught:
        decode_message_body(body)
    assert caught.value.reason is reason


def test_error_texts_name_fields_not_values() -> None:
    body = json.dumps({"metadata": {"eventName": "x", "authorization": 12345, "entityId": [SECRET]}, "payload": {}})
    with pytest.raises(EnvelopeError) as caught:
        decode_message_body(body)
    assert "metadata.authorization" in str(caught.value)
    assert SECRET not in str(caught.value)
    assert "12345" not in str(caught.value)


def test_the_default_size_limit_is_1_mib() -> None:
    def body(size: int) -> str:
        shell = '{"metadata": {"eventName": "x"}, "payload": {"b": ""}}'
        return shell.replace('""', '"' + "x" * (size - len(shell)) + '"')

    assert MAX_MESSAGE_BYTES == 1_048_576
    assert isinstance(decode_message_body(body(300_000)), Envelope)  # over the former 256 KiB
    assert isinstance(decode_message_body(body(MAX_MESSAGE_BYTES)), Envelope)
    with pytest.raises(EnvelopeError, match=f"body is {MAX_MESSAGE_BYTES + 1} bytes, limit is {MAX_MESSAGE_BYTES}"):
        decode_message_body(body(MAX_MESSAGE_BYTES + 1))


def test_size_limit_is_configurable() -> None:
    with pytest.raises(EnvelopeError, match="oversized"):
        decode_message_body(SEED_DO_GOOD, max_bytes=100)
    assert isinstance(decode_message_body(SEED_DO_GOOD, max_bytes=len(SEED_DO_GOOD)), Envelope)


def test_nesting_deeper_than_the_limit_is_refused_with_its_own_reason() -> None:
    from eventbus.core.envelope import MAX_NESTING_DEPTH

    def body(levels: int) -> str:
        # the envelope object and its payload count as two levels
        nested = '{"a": ' * levels + "1" + "}" * levels
        return '{"metadata": {"eventName": "doGood"}, "payload": {"deep": ' + nested + "}}"

    decode_message_body(body(MAX_NESTING_DEPTH - 2))
    with pytest.raises(EnvelopeError) as refused:
        decode_message_body(body(MAX_NESTING_DEPTH - 1))
    assert refused.value.reason is EnvelopeRejection.TOO_DEEP


@pytest.mark.parametrize("key", ["Authorization", "AUTHORIZATION", "authoriZation"])
def test_authorization_spelled_in_any_case_round_trips_but_never_prints(key: str) -> None:
    body = json.loads(SEED_DO_GOOD)
    body["metadata"][key] = SECRET
    envelope = decode_message_body(json.dumps(body))
    assert envelope.metadata.to_wire()[key] == SECRET
    assert json.loads(envelope.to_json())["metadata"][key] == SECRET
    texts = (repr(envelope), str(envelope), repr(envelope.metadata), str(envelope.metadata))
    for text in (*texts, repr(envelope.metadata.to_log())):
        assert "s3cr3t-token-value" not in text
    assert envelope.metadata.to_log()[key] == "***"
    assert "tenant" in repr(Metadata.model_validate({"eventName": "x", "tenant": "acme"})), "other extras still show"


PERSONAL_VALUE = "jane.doe@example.com"


class Card(EventPayload):
    kind: Literal["card"]
    last4: str


class Transfer(EventPayload):
    kind: Literal["transfer"]
    iban: str


class OrderPlacedPayload(EventPayload):
    order_id: int = 0
    scores: dict[str, int] = {}
    method: Annotated[Card | Transfer, Field(discriminator="kind")] | None = None
    note: str = ""
    lines: list[Card] = []

    @field_validator("note")
    @classmethod
    def _checked(cls, value: str) -> str:
        raise ValueError(f"bad {value}")


def invalid_payload_reason(payload: dict[str, object]) -> str:
    envelope = Envelope(metadata=Metadata(event_name="orderPlaced"), payload=payload)
    with pytest.raises(EnvelopeError) as caught:
        Subscription("orderPlaced", "h", OrderPlacedPayload).validate_payload(envelope)
    assert caught.value.reason is EnvelopeRejection.INVALID_PAYLOAD
    return str(caught.value)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"order_id": PERSONAL_VALUE}, "invalid-payload: payload.order_id: int_parsing"),
        ({"scores": {PERSONAL_VALUE: "x"}}, "invalid-payload: payload.scores.*: int_parsing"),
        ({"method": {"kind": PERSONAL_VALUE}}, "invalid-payload: payload.method: union_tag_invalid"),
        ({"method": {"kind": "transfer", "iban": 7}}, "invalid-payload: payload.method.*.iban: string_type"),
        ({"note": PERSONAL_VALUE}, "invalid-payload: payload.note: value_error"),
        ({"lines": [{"kind": "card", "last4": 1234}]}, "invalid-payload: payload.lines.0.last4: string_type"),
    ],
)
def test_invalid_payload_reasons_carry_declared_field_names_and_error_types_only(
    payload: dict[str, object], expected: str
) -> None:
    reason = invalid_payload_reason(payload)
    assert reason == expected
    assert PERSONAL_VALUE not in reason


def test_invalid_metadata_reasons_carry_declared_field_names_and_error_types_only() -> None:
    body = json.dumps({"metadata": {"eventName": "x", "publishDate": PERSONAL_VALUE}, "payload": {}})
    with pytest.raises(EnvelopeError) as caught:
        decode_message_body(body)
    assert str(caught.value) == "invalid-metadata: metadata.publishDate: datetime_from_date_parsing"


def test_a_notification_whose_message_hides_its_brackets_in_escapes_is_still_refused_when_too_deep() -> None:
    """The depth walk is skipped only when the parsed text has too few brackets: an SNS wrapper may write the inner
    message's brackets as \\u005b, so the inner text is what counts."""
    inner = '{"metadata": {"eventName": "x"}, "payload": {"d": ' + "[" * 300 + "]" * 300 + "}}"
    outer = json.dumps({"Type": "Notification", "MessageId": "m", "Message": inner})
    hidden = outer.replace("[", "\\u005b").replace("]", "\\u005d")
    assert "[" not in hidden
    with pytest.raises(EnvelopeError) as refused:
        decode_message_body(hidden)
    assert refused.value.reason is EnvelopeRejection.TOO_DEEP
