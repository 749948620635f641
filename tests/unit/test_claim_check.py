"""The claim-check pointer (:mod:`eventbus.core.claim_check`): what is recognised as one, raw or inside an SNS
notification, and that what we write is what AWS's extended clients write and read."""

from __future__ import annotations

import io
import json
from functools import cache
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sns_extended_client import SNSExtendedClientSession  # type: ignore[import-untyped]
from sqs_extended_client.client import SQSExtendedClientSession

from eventbus.core.claim_check import (
    LEGACY_POINTER_CLASS,
    POINTER_CLASS,
    SIZE_ATTRIBUTE,
    ClaimedBody,
    Pointer,
    find_claim,
    parse_pointer,
    size_attribute,
)
from tests.conftest import REGION
from tests.seed import SEED_DO_GOOD

BUCKET = "claims-bucket"
KEY = "4f1c2d9e-7b8a-4c3d-9e0f-1a2b3c4d5e6f"
POINTER = Pointer(BUCKET, KEY)
#: Exactly as the Python extended clients write it (``json.dumps`` with its default separators).
EXTENDED_CLIENT_BODY = f'["{POINTER_CLASS}", {{"s3BucketName": "{BUCKET}", "s3Key": "{KEY}"}}]'
#: The longest text :func:`parse_pointer` looks at.
LIMIT = 2048


def pointer_text(bucket: object = BUCKET, key: object = KEY, cls: object = POINTER_CLASS) -> str:
    return json.dumps([cls, {"s3BucketName": bucket, "s3Key": key}])


def notification(message: str, **extra: Any) -> dict[str, Any]:
    """An SNS notification as SQS receives it with raw delivery off."""
    return {
        "Type": "Notification",
        "MessageId": "5f3b8c1e-0000-4000-8000-000000000000",
        "TopicArn": "arn:aws:sns:eu-west-2:000000000000:large-events",
        "Message": message,
        "Timestamp": "2024-05-01T10:00:00.000Z",
        "SignatureVersion": "1",
        "Signature": "c2lnbmF0dXJl",
        "SigningCertURL": "https://sns.eu-west-2.amazonaws.com/SimpleNotificationService-0000.pem",
        "UnsubscribeURL": "https://sns.eu-west-2.amazonaws.com/?Action=Unsubscribe",
        "MessageAttributes": {SIZE_ATTRIBUTE: {"Type": "Number", "Value": "300000"}},
        **extra,
    }


# ------------------------------------------------------------------ parse_pointer


@pytest.mark.parametrize("cls", [POINTER_CLASS, LEGACY_POINTER_CLASS], ids=["current", "legacy"])
@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
def test_a_pointer_of_either_class_is_recognised_as_str_or_bytes(cls: str, as_bytes: bool) -> None:
    text = pointer_text(cls=cls)
    assert parse_pointer(text.encode() if as_bytes else text) == POINTER


@pytest.mark.parametrize(
    "text",
    [
        EXTENDED_CLIENT_BODY,
        POINTER.to_json(),
        f"  \n\t{EXTENDED_CLIENT_BODY}",
        f"{EXTENDED_CLIENT_BODY} \n",
        f'\r\n[ "{POINTER_CLASS}" ,\n  {{ "s3Key" : "{KEY}" , "s3BucketName" : "{BUCKET}" }} ]\n',
    ],
    ids=["python-client", "compact", "leading-whitespace", "trailing-whitespace", "spread-out"],
)
@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
def test_whitespace_anywhere_json_allows_it_is_accepted(text: str, as_bytes: bool) -> None:
    assert parse_pointer(text.encode() if as_bytes else text) == POINTER


@pytest.mark.parametrize(
    "text",
    [
        pointer_text(cls="software.amazon.payloadoffloading.SomethingElse"),
        pointer_text(cls=POINTER_CLASS.lower()),
        json.dumps([POINTER_CLASS, {"s3BucketName": BUCKET, "s3Key": KEY}, "extra"]),
        json.dumps([POINTER_CLASS]),
        json.dumps([{"s3BucketName": BUCKET, "s3Key": KEY}, POINTER_CLASS]),
        json.dumps({"class": POINTER_CLASS, "s3BucketName": BUCKET, "s3Key": KEY}),
        json.dumps([POINTER_CLASS, [BUCKET, KEY]]),
        json.dumps([POINTER_CLASS, {"s3Key": KEY}]),
        pointer_text(bucket=""),
        pointer_text(bucket=None),
        pointer_text(bucket=7),
        json.dumps([POINTER_CLASS, {"s3BucketName": BUCKET}]),
        pointer_text(key=""),
        pointer_text(key=["k"]),
        pointer_text()[:-1],
        "[not json",
        "[]",
        "",
        "   ",
        SEED_DO_GOOD,
        json.dumps(["doGood", {"s3BucketName": BUCKET, "s3Key": KEY}]),
    ],
    ids=[
        "wrong-class",
        "class-in-lower-case",
        "three-elements",
        "one-element",
        "reversed",
        "object-not-list",
        "where-is-a-list",
        "bucket-missing",
        "bucket-empty",
        "bucket-null",
        "bucket-number",
        "key-missing",
        "key-empty",
        "key-list",
        "truncated",
        "not-json",
        "empty-list",
        "empty",
        "blank",
        "envelope",
        "task-like",
    ],
)
@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
def test_anything_else_is_not_a_pointer(text: str, as_bytes: bool) -> None:
    assert parse_pointer(text.encode() if as_bytes else text) is None


def test_non_utf8_bytes_are_not_a_pointer() -> None:
    assert parse_pointer(b"[\xff\xfe]") is None


def test_deeply_nested_json_is_not_a_pointer() -> None:
    assert parse_pointer("[" * 1500 + "]" * 1500) is None


def test_a_pointer_up_to_2048_characters_is_recognised_and_a_longer_one_is_not() -> None:
    at_limit = Pointer(BUCKET, "k" * (LIMIT - len(Pointer(BUCKET, "").to_json())))
    assert len(at_limit.to_json()) == LIMIT
    assert parse_pointer(at_limit.to_json()) == at_limit
    assert parse_pointer(at_limit.to_json().encode()) == at_limit

    over = Pointer(BUCKET, at_limit.key + "k")
    assert parse_pointer(over.to_json()) is None
    assert parse_pointer(over.to_json().encode()) is None
    assert parse_pointer(" " * (LIMIT + 1 - len(POINTER.to_json())) + POINTER.to_json()) is None, "padding counts"


# ------------------------------------------------------------------ find_claim


@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
def test_a_raw_pointer_is_a_claim_whose_body_is_the_stored_text(as_bytes: bool) -> None:
    claim = find_claim(EXTENDED_CLIENT_BODY.encode() if as_bytes else EXTENDED_CLIENT_BODY)
    assert claim == ClaimedBody(POINTER, None)
    assert claim.with_body(SEED_DO_GOOD) == SEED_DO_GOOD


@pytest.mark.parametrize("cls", [POINTER_CLASS, LEGACY_POINTER_CLASS], ids=["current", "legacy"])
@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
def test_a_pointer_inside_an_sns_notification_is_a_claim_that_keeps_the_notification(cls: str, as_bytes: bool) -> None:
    wrapped = notification(pointer_text(cls=cls))
    text = json.dumps(wrapped)
    claim = find_claim(text.encode() if as_bytes else text)

    assert claim is not None
    assert claim.pointer == POINTER
    assert claim.notification == wrapped
    stored = json.dumps({"metadata": {"eventName": "doGood"}, "payload": {"name": "Zoë ✓ 🚀"}}, ensure_ascii=False)
    restored = json.loads(claim.with_body(stored))
    assert restored["Message"] == stored
    assert {k: v for k, v in restored.items() if k != "Message"} == {k: v for k, v in wrapped.items() if k != "Message"}
    assert list(restored) == list(wrapped), "every key kept, in order"


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(notification(SEED_DO_GOOD)),
        json.dumps(notification(json.dumps({"payload": {"note": "see PayloadS3Pointer"}}))),
        json.dumps(notification(pointer_text(bucket=""))),
        json.dumps({**notification(pointer_text()), "Type": "SubscriptionConfirmation"}),
        json.dumps(notification(pointer_text()))[:-1],
        json.dumps({"Type": "Notification", "Message": json.loads(pointer_text())}),
        json.dumps([notification(pointer_text())]),
        SEED_DO_GOOD,
        json.dumps(json.loads(SEED_DO_GOOD) | {"payload": {"n": POINTER_CLASS}}),
    ],
    ids=[
        "notification-of-an-envelope",
        "notification-mentioning-the-class",
        "notification-of-a-broken-pointer",
        "not-a-notification",
        "truncated",
        "message-not-a-string",
        "notification-in-a-list",
        "envelope",
        "envelope-holding-the-class-name",
    ],
)
def test_anything_else_carries_no_claim(body: str) -> None:
    assert find_claim(body) is None
    assert find_claim(body.encode()) is None


# ------------------------------------------------------------------ what the extended clients write and read


class RecordingS3:
    """Stands in for the extended clients' S3 client: records puts, serves gets from them."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes) -> dict[str, Any]:
        self.objects[Bucket, Key] = Body
        return {}

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        return {"Body": io.BytesIO(self.objects[Bucket, Key])}


@cache
def sns_extended_client() -> Any:
    """The SNS extended client, built offline (nothing here calls AWS)."""
    session = SNSExtendedClientSession(region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test")
    return session.client("sns")


def extended_client_writes(bucket: str, key: str, body: str) -> tuple[dict[str, Any], str, bytes]:
    """What ``amazon-sns-extended-client`` publishes for ``body`` stored at bucket/key: attributes, message, object."""
    client = sns_extended_client()
    s3 = RecordingS3()
    client.s3_client = s3
    client.large_payload_support = bucket
    client.always_through_s3 = True
    # the client takes the object's key from this attribute when it is given, else makes a UUID
    attributes, message = client._make_payload({"S3Key": {"DataType": "String", "StringValue": key}}, body, None)
    return attributes, message, s3.objects[bucket, key]


def test_to_json_is_the_pointer_the_extended_client_writes() -> None:
    _, message, _ = extended_client_writes(BUCKET, KEY, SEED_DO_GOOD)
    assert message == EXTENDED_CLIENT_BODY
    ours = POINTER.to_json()
    assert json.loads(ours) == json.loads(message)
    assert list(json.loads(ours)[1]) == ["s3BucketName", "s3Key"], "same key order"
    # the same text but for the separators' spaces (the Java client writes it compact, as we do)
    assert json.dumps(json.loads(ours)) == message
    assert ours == message.replace(", ", ",").replace(": ", ":")
    assert parse_pointer(ours) == POINTER


def test_size_attribute_is_the_extended_client_s_for_the_body_s_utf8_length() -> None:
    body = json.dumps({"payload": {"name": "Zoë ✓ 🚀" * 10}}, ensure_ascii=False)
    attributes, _, stored = extended_client_writes(BUCKET, KEY, body)
    assert len(stored) != len(body), "the size is in bytes, not characters"
    assert attributes[SIZE_ATTRIBUTE] == size_attribute(len(body.encode()))
    assert size_attribute(len(stored)) == {"DataType": "Number", "StringValue": str(len(stored))}
    assert size_attribute(0) == {"DataType": "Number", "StringValue": "0"}


def test_the_sqs_extended_client_reads_the_body_our_pointer_names() -> None:
    session = SQSExtendedClientSession(region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test")  # type: ignore[no-untyped-call]
    client: Any = session.client("sqs")
    s3 = RecordingS3()
    s3.objects[BUCKET, KEY] = SEED_DO_GOOD.encode()
    client.s3_client = s3
    assert client.retrieve_message_from_s3(POINTER.to_json()) == SEED_DO_GOOD


def test_str_is_an_s3_url() -> None:
    assert str(POINTER) == f"s3://{BUCKET}/{KEY}"


# ------------------------------------------------------------------ properties

names = st.text(min_size=1, max_size=400)


@given(bucket=names, key=names)
def test_any_pointer_round_trips_through_its_json_up_to_the_limit(bucket: str, key: str) -> None:
    pointer = Pointer(bucket, key)
    text = pointer.to_json()
    expected = pointer if len(text) <= LIMIT else None
    assert parse_pointer(text) == expected
    assert parse_pointer(text.encode()) == expected
    assert parse_pointer(f" \n{text}\n") == (pointer if len(text) + 3 <= LIMIT else None)
    claim = find_claim(text)
    assert (claim.pointer if claim else None) == expected


@given(bucket=names, key=names)
def test_any_pointer_is_what_the_extended_client_writes(bucket: str, key: str) -> None:
    _, message, _ = extended_client_writes(bucket, key, "{}")
    assert json.dumps(json.loads(Pointer(bucket, key).to_json())) == message


def test_a_pointer_notification_with_large_attributes_is_a_claim() -> None:
    big = notification(POINTER.to_json(), MessageAttributes={"note": {"Type": "String", "Value": "v" * 20_000}})
    assert find_claim(json.dumps(big)) == ClaimedBody(POINTER, big)
