"""Claim-check for large events, in the wire format of AWS's extended clients.

An event too large for SNS/SQS is stored as an object (S3) and the message carries a pointer to it instead, exactly
as ``amazon-sns-extended-client`` / ``amazon-sqs-extended-client`` (Python) and their Java originals write it::

    ["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": "bucket", "s3Key": "key"}]

with a message attribute ``ExtendedPayloadSize`` (Number: the stored body's size in bytes). The reader also accepts
the legacy pointer class ``com.amazon.sqs.javamessaging.MessageS3Pointer`` (attribute ``SQSLargePayloadSize``).
So services written with those clients and eventbus services read each other's large messages.

This module is pure: it builds and recognises pointers and decides what a body's fate is; the bytes are moved by a
:class:`~eventbus.ports.PayloadStore` (S3: :mod:`eventbus.adapters.aws.s3`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

#: The pointer class AWS's extended clients write today.
POINTER_CLASS: Final = "software.amazon.payloadoffloading.PayloadS3Pointer"
#: The pointer class of their older releases (read, never written).
LEGACY_POINTER_CLASS: Final = "com.amazon.sqs.javamessaging.MessageS3Pointer"
#: The message attribute carrying the stored body's size.
SIZE_ATTRIBUTE: Final = "ExtendedPayloadSize"
#: The legacy name of that attribute (read, never written).
LEGACY_SIZE_ATTRIBUTE: Final = "SQSLargePayloadSize"
#: The longest pointer text recognised (a bucket name is at most 63 characters, an S3 key at most 1024 bytes).
_MAX_POINTER_CHARS: Final = 2048
#: Where a consumer leaves, in a received message's transport metadata (kombu's ``delivery_info``), the pointer of
#: the claim-checked body to delete once the message is deleted.
CLAIM_CHECK_KEY: Final = "eventbus_claim_check"
#: Default: the largest event body stored through a claim-check, bytes (``EVENTBUS_LARGE_PAYLOAD_MAX_BYTES``).
DEFAULT_MAX_STORED_BYTES: Final = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Pointer:
    """Where a claim-checked event's body is: an S3 bucket and key."""

    bucket: str
    key: str

    def to_json(self) -> str:
        """The message body that stands for the event: the extended clients' pointer."""
        return json.dumps([POINTER_CLASS, {"s3BucketName": self.bucket, "s3Key": self.key}], separators=(",", ":"))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_pointer(text: str | bytes) -> Pointer | None:
    """The pointer a message body is, or ``None`` when it is anything else (an envelope, a task message...).

    Cheap for everything that is not a pointer: only a short text that starts with ``[`` is decoded.
    """
    if len(text) > _MAX_POINTER_CHARS:
        return None
    stripped = text.lstrip()
    if stripped[:1] not in ("[", b"["):
        return None
    try:
        data = json.loads(stripped)
    except (ValueError, RecursionError):
        return None
    if not (isinstance(data, list) and len(data) == 2 and data[0] in (POINTER_CLASS, LEGACY_POINTER_CLASS)):
        return None
    where = data[1]
    if not isinstance(where, dict):
        return None
    bucket, key = where.get("s3BucketName"), where.get("s3Key")
    if not (isinstance(bucket, str) and bucket and isinstance(key, str) and key):
        return None
    return Pointer(bucket, key)


@dataclass(frozen=True, slots=True)
class ClaimedBody:
    """A message body that points at a stored event: the pointer, and how to put the fetched body in its place."""

    pointer: Pointer
    #: The SNS notification wrapping the pointer (raw delivery off), else ``None`` (raw delivery, or sent to SQS).
    notification: dict[str, object] | None

    def with_body(self, stored: str) -> str:
        """The message body as it would have been without the claim-check: ``stored`` in the pointer's place."""
        if self.notification is None:
            return stored
        # unescaped: the rebuilt notification is judged against the size limit the stored body was checked against
        return json.dumps({**self.notification, "Message": stored}, ensure_ascii=False)


def find_claim(body: str | bytes) -> ClaimedBody | None:
    """The claim-check a message body carries (raw, or inside an SNS notification), or ``None``.

    A body that is neither costs a character test (raw) and one substring search (a notification).
    """
    pointer = parse_pointer(body)
    if pointer is not None:
        return ClaimedBody(pointer, None)
    # no length cap: a notification also carries the message's attributes (up to 256 KiB); the substring test keeps
    # ordinary bodies cheap
    text = body if isinstance(body, str) else body.decode("utf-8", "replace")
    if "PayloadS3Pointer" not in text and "MessageS3Pointer" not in text:
        return None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not (isinstance(data, dict) and data.get("Type") == "Notification" and isinstance(data.get("Message"), str)):
        return None
    pointer = parse_pointer(data["Message"])
    return ClaimedBody(pointer, data) if pointer is not None else None


def size_attribute(size: int) -> dict[str, str]:
    """The ``ExtendedPayloadSize`` message attribute's value (boto3's shape) for a stored body of ``size`` bytes."""
    return {"DataType": "Number", "StringValue": str(size)}
