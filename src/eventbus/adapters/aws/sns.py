"""The SNS publisher: one ``Publish`` per event, ``PublishBatch`` for batches.

SNS limits what one call carries: at most 10 entries per ``PublishBatch`` (:data:`SNS_BATCH_SIZE`), and at most the
topic's ``MaximumMessageSize`` of messages plus message attributes, for one ``Publish`` and for all the entries of one
``PublishBatch`` together: 1 MiB at most (:data:`SNS_MAX_PAYLOAD_BYTES`, since September 2026), 256 KiB on a topic
left at its default (:data:`SNS_DEFAULT_PAYLOAD_BYTES`). The publisher refuses an event over ``max_message_bytes``
(1 MiB unless configured; the container passes ``EVENTBUS_MAX_MESSAGE_BYTES``), or one whose SNS notification (how a
subscription without raw delivery receives it) could exceed that (:func:`sns_delivered_size`), and ``publish_batch``
puts at most ``max_batch_bytes`` in one call (256 KiB unless configured, what every topic takes: a batch of small
events never fails on a topic left at its default): it splits a batch by entries and by bytes, in order; an event too
large to share a call goes alone. An event larger than the limit is never sent: its position fails with a
:class:`PublishError` naming its event and size (never its content), the others are sent all the same. When such
refusals are the only failures, the error is raised from an :class:`EnvelopeError` (reason ``oversized``): retrying
cannot help, which is how the outbox relay tells them from an outage.

 With a ``payload_store`` (claim-check, :mod:`eventbus.core.claim_check`), an event whose message exceeds
``claim_check_threshold`` is stored there and published as the extended clients' pointer with the
``ExtendedPayloadSize`` attribute; the limit it must then keep is ``claim_check_max_bytes``. A body that could not be
stored fails its position like a failed call (an object stored for a publish that then fails stays until the bucket's
lifecycle rule expires it).

On a FIFO topic (its name ends in ``.fifo``) each message carries its event's message group and a deduplication id
(:mod:`eventbus.core.fifo`), and a batch never sends an event after an earlier one of its group failed.

:func:`longest_publish_batch` is how long a batch can take at worst with a client's timeouts and attempts; the
container checks the outbox's claim lease against it.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from eventbus.core.claim_check import DEFAULT_MAX_STORED_BYTES, SIZE_ATTRIBUTE, size_attribute
from eventbus.core.envelope import Envelope
from eventbus.core.fifo import deduplication_id_of, message_group_of
from eventbus.core.naming import FIFO_SUFFIX
from eventbus.core.telemetry import Telemetry
from eventbus.errors import ClaimCheckError, EnvelopeError, EnvelopeRejection, PublishError
from eventbus.ports import PayloadStore, Publisher

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

#: SNS's PublishBatch limit: entries per call.
SNS_BATCH_SIZE: Final = 10
#: SNS's payload limit: bytes of one message, and of all the messages of one PublishBatch together, each counted with
#: its message attributes. The most a topic's ``MaximumMessageSize`` allows.
SNS_MAX_PAYLOAD_BYTES: Final = 1024 * 1024
#: A topic's default ``MaximumMessageSize``: what every topic takes in one call.
SNS_DEFAULT_PAYLOAD_BYTES: Final = 256 * 1024

#: What SNS's notification adds around a message for a subscription without raw delivery, besides the message, the
#: topic ARN and the message attributes: its type, ids and timestamp, a signature (up to a 4,096-bit key's), the
#: certificate and unsubscribe URLs (the latter with the subscription's id), a FIFO sequence number, and the layout
#: (an emulator indents it). About 1,300 bytes on AWS's and the emulators' notifications; this leaves room.
SNS_WRAPPER_BYTES: Final = 2048
#: The longest topic ARN (partition, region, account and a 256-character name), for a publisher given only a name.
LONGEST_TOPIC_ARN: Final = 320

#: Errors that mean SNS is unreachable (refused, reset, timed out): later calls of the batch would fail the same way.
_UNREACHABLE: Final = (HTTPClientError, BotoConnectionError)


def _attributes(envelope: Envelope) -> dict[str, Any]:
    # eventName as a message attribute lets subscriptions filter by event without reading the body.
    return {"eventName": {"DataType": "String", "StringValue": envelope.event_name}}


def _size(message: str, attributes: dict[str, Any]) -> int:
    """What SNS counts: the message's UTF-8 bytes, and each attribute's name, data type and value."""
    texts = [message]
    for name, value in attributes.items():
        texts += [name, value["DataType"], value["StringValue"]]
    return sum(len(text.encode("utf-8", "surrogatepass")) for text in texts)


def _escaped(text: str) -> int:
    """The most bytes ``text`` takes as a JSON string in SNS's notification: quotes, backslashes and control
    characters escaped, a non-ASCII character as its ``\\u`` escapes (as the emulators write it; never fewer bytes
    than its UTF-8), and a slash counted as escaped too (``\\/``, which JSON allows)."""
    return len(json.dumps(text)) + text.count("/")


def _delivered(message: str, attributes: dict[str, Any], topic_arn_length: int) -> int:
    attributes_size = sum(
        _escaped(name) + _escaped(value["DataType"]) + _escaped(value["StringValue"]) + 64
        for name, value in attributes.items()
    )
    return _escaped(message) + attributes_size + 2 * topic_arn_length + SNS_WRAPPER_BYTES


def sns_delivered_size(envelope: Envelope, topic_arn: str = "") -> int:
    """At most how many bytes a queue receives for ``envelope`` published to ``topic_arn`` (any topic's ARN when
    empty) through a subscription without raw delivery: SNS's JSON notification around the event (see
    :class:`SnsPublisher`)."""
    return _delivered(envelope.to_json(), _attributes(envelope), len(topic_arn) or LONGEST_TOPIC_ARN)


def _pause_before_retry(retry: int) -> float:
    # botocore's standard retry mode: rand(0, 1) * min(2 ** (retry - 1), 20) s for a throttling error (the longest
    # base), raised by up to 5 s when SNS sends x-amz-retry-after
    return min(2.0 ** (retry - 1), 20.0) + 5.0


def longest_publish_batch(
    events: int, *, connect_timeout: float, read_timeout: float, attempts: int, topic_lookup: bool = False
) -> float:
    """The longest :meth:`SnsPublisher.publish_batch` of ``events`` envelopes can take, in seconds, with a client of
    these timeouts and total attempts (botocore's standard retry mode).

    Each event may need a call of its own (two events over half the payload limit cannot share one), plus one
    ``CreateTopic`` with ``topic_lookup`` (only the topic's name given); each call makes up to ``attempts`` attempts
    of at most ``connect_timeout + read_timeout``, with botocore's pauses between them.
    """
    one_call = attempts * (connect_timeout + read_timeout) + sum(map(_pause_before_retry, range(1, attempts)))
    return (events + (1 if topic_lookup else 0)) * one_call


class SnsPublisher(Publisher):
    """Publishes envelopes as JSON to one SNS topic.

    ``topic_arn`` may be omitted; the ARN is then looked up once with ``CreateTopic`` (which is
    idempotent) on the first publish. Set it explicitly in production to need no
    ``sns:CreateTopic`` permission.

    ``max_message_bytes`` is the most one event's SNS message (with its message attributes) may have: the topic's
    ``MaximumMessageSize``, never more than :data:`SNS_MAX_PAYLOAD_BYTES` (a larger value counts as that). Lower it for
    a topic, an endpoint or consumers that take less. ``max_batch_bytes`` is the most one ``PublishBatch`` carries
    (never more than ``max_message_bytes``): :data:`SNS_DEFAULT_PAYLOAD_BYTES` by default, which every topic takes;
    raise it to the topic's ``MaximumMessageSize`` for fewer calls. ``max_payload_bytes``, their former single name
    (deprecated), sets both. ``telemetry`` records each ``PublishBatch`` call's size (none by default).

    ``max_message_bytes`` also bounds what a queue receives: with raw delivery off (SNS's default, and eventbus's
    topology's) SNS delivers each event inside its JSON notification, the event escaped as a string, and a queue
    refuses a notification over its ``MaximumMessageSize`` after SNS accepted the publish (AWS and LocalStack then drop
    it). So an event whose notification could exceed ``max_message_bytes`` (:func:`sns_delivered_size`: the
    notification's fields, the topic ARN twice, the escaped event and attributes, counted at most) is refused too, or
    claim-checked with a ``payload_store``. ``wrapped_delivery=False`` (every subscription of the topic has raw
    delivery on) bounds only what SNS counts.

    ``payload_store`` turns on the claim-check: an event whose message (with attributes) is over
    ``claim_check_threshold`` bytes (``max_message_bytes`` by default, never more), or whose notification could
    exceed ``max_message_bytes``, is stored there and published as a pointer; such an event may have up to
    ``claim_check_max_bytes``.
    """

    def __init__(
        self,
        client: SNSClient,
        *,
        topic_arn: str | None = None,
        topic_name: str | None = None,
        max_message_bytes: int = SNS_MAX_PAYLOAD_BYTES,
        max_batch_bytes: int = SNS_DEFAULT_PAYLOAD_BYTES,
        max_payload_bytes: int | None = None,
        telemetry: Telemetry | None = None,
        payload_store: PayloadStore | None = None,
        claim_check_threshold: int | None = None,
        claim_check_max_bytes: int = DEFAULT_MAX_STORED_BYTES,
        wrapped_delivery: bool = True,
    ) -> None:
        if topic_arn is None and topic_name is None:
            raise ValueError("SnsPublisher needs topic_arn or topic_name")
        if max_payload_bytes is not None:
            warnings.warn(
                "SnsPublisher's max_payload_bytes is deprecated: pass max_message_bytes and max_batch_bytes",
                DeprecationWarning,
                stacklevel=2,
            )
            max_message_bytes = max_batch_bytes = max_payload_bytes
        if max_message_bytes <= 0 or max_batch_bytes <= 0:
            raise ValueError("SnsPublisher's max_message_bytes and max_batch_bytes must be positive")
        self._client = client
        self._topic_arn = topic_arn
        self._topic_name = topic_name
        self.max_message_bytes = min(max_message_bytes, SNS_MAX_PAYLOAD_BYTES)
        self.max_batch_bytes = min(max_batch_bytes, self.max_message_bytes)
        self._lock = threading.Lock()
        self.telemetry = telemetry if telemetry is not None else Telemetry()
        if claim_check_threshold is not None and claim_check_threshold <= 0:
            raise ValueError("SnsPublisher's claim_check_threshold must be positive")
        self.payload_store = payload_store
        #: A FIFO topic (its name ends in ``.fifo``): every message gets a group and a deduplication id.
        self.fifo = (topic_arn or topic_name or "").endswith(FIFO_SUFFIX)
        self.claim_check_threshold = min(claim_check_threshold or self.max_message_bytes, self.max_message_bytes)
        self.claim_check_max_bytes = claim_check_max_bytes
        #: A subscription may receive events in SNS's JSON notification (raw delivery off): its size is bounded too.
        self.wrapped_delivery = wrapped_delivery

    @property
    def client(self) -> SNSClient:
        """The boto3 client it publishes with."""
        return self._client

    @property
    def topic_arn(self) -> str:
        """The topic's ARN, resolved on first use if only the name was given."""
        if self._topic_arn is None:
            with self._lock:
                if self._topic_arn is None:
                    assert self._topic_name is not None
                    try:
                        self._topic_arn = self._client.create_topic(Name=self._topic_name)["TopicArn"]
                    except (ClientError, BotoCoreError) as exc:
                        raise PublishError(f"cannot resolve SNS topic {self._topic_name!r}: {exc}") from exc
        return self._topic_arn

    def _too_large(self, envelope: Envelope, size: int, delivered: int) -> EnvelopeError | None:
        """The refusal of an event of ``size`` bytes as SNS counts them and up to ``delivered`` in SNS's
        notification, if either is over its limit."""
        limit = self.max_message_bytes if self.payload_store is None else self.claim_check_max_bytes
        if size > limit:
            detail = f"event {envelope.event_name!r} is {size} bytes, limit is {limit}"
        elif self.payload_store is None and delivered > limit:  # with a store, such an event is claim-checked
            detail = (
                f"event {envelope.event_name!r} is {size} bytes, up to {delivered} as SNS delivers it to a queue "
                f"without raw delivery (in its JSON notification), limit is {limit}"
            )
        else:
            return None
        return EnvelopeError(EnvelopeRejection.OVERSIZED, detail)

    def _notification_size(self, message: str, attributes: dict[str, Any], size: int) -> int:
        """At most the bytes a queue without raw delivery receives for this message (:func:`sns_delivered_size`);
        only ``size`` when even seven bytes per byte of it (the most escaping takes) cannot reach the limit."""
        if not self.wrapped_delivery:
            return size
        arn_length = len(self._topic_arn) if self._topic_arn else LONGEST_TOPIC_ARN
        if 7 * size + 64 * len(attributes) + 2 * arn_length + SNS_WRAPPER_BYTES <= self.max_message_bytes:
            return size
        return _delivered(message, attributes, arn_length)

    def _message(self, envelope: Envelope) -> tuple[dict[str, Any], int]:
        """The SNS message for ``envelope`` (``Message``, ``MessageAttributes`` and, on a FIFO topic, its group and
        deduplication ids: :mod:`eventbus.core.fifo`) and the size SNS counts; a pointer when claim-checked.

        Raises:
            EnvelopeError: ``oversized``, too large even for the claim-check.
            ClaimCheckError: the body could not be stored.
        """
        message, attributes = envelope.to_json(), _attributes(envelope)
        size = _size(message, attributes)
        delivered = self._notification_size(message, attributes, size)
        refusal = self._too_large(envelope, size, delivered)
        if refusal is not None:
            raise refusal
        fifo = (
            {
                "MessageGroupId": message_group_of(envelope),
                "MessageDeduplicationId": deduplication_id_of(envelope, message),
            }
            if self.fifo
            else {}
        )
        if self.payload_store is not None and (size > self.claim_check_threshold or delivered > self.max_message_bytes):
            body = message.encode("utf-8", "surrogatepass")
            pointer = self.payload_store.put(body)
            message, attributes = pointer.to_json(), {**attributes, SIZE_ATTRIBUTE: size_attribute(len(body))}
            size = _size(message, attributes)
        return {"Message": message, "MessageAttributes": attributes, **fifo}, size

    def publish(self, envelope: Envelope) -> str:
        """Publish one envelope; return SNS's MessageId."""
        try:
            fields, _ = self._message(envelope)
        except EnvelopeError as refusal:
            raise PublishError(f"SNS publish refused: {refusal.detail}") from refusal
        except ClaimCheckError as exc:
            raise PublishError(f"SNS publish of {envelope.event_name!r} failed: {exc}") from exc
        try:
            response = self._client.publish(TopicArn=self.topic_arn, **fields)
        except (ClientError, BotoCoreError) as exc:
            raise PublishError(f"SNS publish of {envelope.event_name!r} failed: {exc}") from exc
        return response["MessageId"]

    def _calls(
        self, envelopes: Sequence[Envelope]
    ) -> tuple[list[list[Any]], dict[str, EnvelopeError], dict[str, ClaimCheckError]]:
        """The entries of each ``PublishBatch`` call, in order, the refusals of events too large for any, and the
        claim-checked events whose body could not be stored."""
        calls: list[list[Any]] = []
        refused: dict[str, EnvelopeError] = {}
        unstored: dict[str, ClaimCheckError] = {}
        room = 0  # bytes left in the last call
        for n, envelope in enumerate(envelopes):
            try:
                fields, size = self._message(envelope)
            except EnvelopeError as refusal:
                refused[str(n)] = refusal
                continue
            except ClaimCheckError as exc:
                unstored[str(n)] = exc
                continue
            if not calls or len(calls[-1]) == SNS_BATCH_SIZE or size > room:
                calls.append([])
                room = self.max_batch_bytes
            calls[-1].append({"Id": str(n), **fields})
            room -= size
        return calls, refused, unstored

    @staticmethod
    def _stop_groups(stopped: dict[str, int], group_of: dict[str, str], failed_ids: Sequence[str]) -> None:
        for failed_id in failed_ids:
            group = group_of.get(failed_id)
            if group is not None:
                stopped[group] = min(stopped.get(group, int(failed_id)), int(failed_id))

    def publish_batch(self, envelopes: Sequence[Envelope]) -> list[str]:
        """Publish in ``PublishBatch`` calls within SNS's limits; every call is tried before failures are raised.

        On a FIFO topic an event is not sent after an earlier event of its message group failed in this batch: it
        fails too ("held back"), so a retry sends the group in order.
        """
        ids: list[str] = [""] * len(envelopes)
        calls, refused, unstored = self._calls(envelopes)
        failed: list[str] = [*refused, *unstored]
        reasons: list[str] = [f"{n}: {refusal.detail}" for n, refusal in refused.items()]
        reasons += [f"{n}: {exc}" for n, exc in unstored.items()]
        # FIFO: an event whose group had an earlier event fail is not sent (it would overtake it); its group's first
        # failure, by position
        group_of = {e["Id"]: e["MessageGroupId"] for call in calls for e in call if "MessageGroupId" in e}
        stopped: dict[str, int] = {}
        if self.fifo:
            for n in sorted(map(int, failed)):
                stopped.setdefault(message_group_of(envelopes[n]), n)
        for k, planned in enumerate(calls):
            entries = [e for e in planned if stopped.get(group_of.get(e["Id"], ""), len(envelopes)) > int(e["Id"])]
            held = [e["Id"] for e in planned if e not in entries]
            if held:
                failed.extend(held)
                reasons.append(f"{', '.join(held)}: held back behind an earlier failure of their message group")
            if not entries:
                continue
            self.telemetry.batch_sent(operation="publish", size=len(entries))
            try:
                response = self._client.publish_batch(TopicArn=self.topic_arn, PublishBatchRequestEntries=entries)
            except _UNREACHABLE as exc:
                failed.extend(entry["Id"] for entry in entries)
                failed.extend(entry["Id"] for later in calls[k + 1 :] for entry in later)
                reasons.append(str(exc))
                break
            except (ClientError, BotoCoreError) as exc:
                failed.extend(entry["Id"] for entry in entries)
                reasons.append(str(exc))
                self._stop_groups(stopped, group_of, [entry["Id"] for entry in entries])
                continue
            for ok in response.get("Successful", []):
                ids[int(ok["Id"])] = ok["MessageId"]
            bad_ids = [str(bad["Id"]) for bad in response.get("Failed", [])]
            for bad in response.get("Failed", []):
                failed.append(bad["Id"])
                reasons.append(f"{bad['Id']}: {bad.get('Code', '?')}")
            self._stop_groups(stopped, group_of, bad_ids)
        if failed:
            failed.sort(key=int)
            error = PublishError(
                f"SNS publish_batch: {len(failed)} of {len(envelopes)} failed ({'; '.join(reasons[:3])})",
                failed_ids=tuple(failed),
            )
            if len(refused) == len(failed):
                # nothing but events too large for SNS: say so, retrying them cannot help
                raise error from EnvelopeError(
                    EnvelopeRejection.OVERSIZED, "; ".join(refusal.detail for refusal in refused.values())
                )
            raise error
        return ids
