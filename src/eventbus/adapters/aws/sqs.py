"""SQS queue operations: every SQS call eventbus's Celery runtime makes besides kombu's asynchronous receive and batch
path.

:class:`SqsQueues` owns those calls (queue attributes, the dead-letter copy, a single visibility change, the
synchronous ``DeleteMessageBatch`` / ``ChangeMessageVisibilityBatch`` sent at shutdown or without an event loop) and
the one cache of queue attributes they share: per queue URL, ``VisibilityTimeout`` and ``RedrivePolicy`` read by one
``GetQueueAttributes`` call, the dead-letter queue's URL resolved from the policy by ``GetQueueUrl`` when first asked
for and kept with them, all for :data:`ATTRIBUTES_TTL` seconds.

A failed call raises :class:`~eventbus.errors.TransportError` with the vendor's own words (never a message body) and
the vendor's exception chained. Clients come from a factory (queue name -> boto3 SQS client; in the transport,
kombu's ``channel.sqs(queue=name)``), so this module builds no client and connects to nothing by itself.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from eventbus.adapters.aws.failures import REASON_LIMIT, vendor_reason
from eventbus.errors import TransportError

__all__ = ["ATTRIBUTES_TTL", "DEFAULT_VISIBILITY", "SQS_CALL_ERRORS", "SqsQueues"]

#: The transport's logger: a visibility timeout that cannot be read is the transport's concern.
logger = logging.getLogger("eventbus.transport")

#: What a boto3 SQS call raises when it fails; for callers that let kombu make the call (``Message.ack_log_error``).
SQS_CALL_ERRORS: Final = (ClientError, BotoCoreError, OSError)
#: SQS's own default visibility timeout, assumed until a queue's attribute could be read.
DEFAULT_VISIBILITY: Final = 30
#: How long the attributes of a queue are trusted before they are read again (seconds).
ATTRIBUTES_TTL: Final = 60.0
_DEAD_LETTER_REASON_LIMIT: Final = 1000

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class _Attributes:
    """What one ``GetQueueAttributes`` call said about a queue, and when."""

    read_at: float
    visibility: int
    #: The attributes as SQS returned them; ``None`` when the call failed (``visibility`` is then a fallback).
    raw: dict[str, str] | None
    dead_letter_resolved: bool = False
    dead_letter_url: str | None = None


class SqsQueues:
    """The SQS calls made on queues by URL, with one attribute cache per queue URL.

    Every method takes the queue's name (which client to use) and its URL. Safe to call from the event loop's thread
    and from the dead-letter copier's: a cache entry is replaced whole, never locked around a call, so two threads
    missing the cache at once cost one extra call, nothing more.
    """

    def __init__(self, client_for: Callable[[str], Any], clock: Callable[[], float] = time.monotonic) -> None:
        self._client_for = client_for
        self._clock = clock
        self._attributes: dict[str, _Attributes] = {}

    def visibility_timeout(self, queue: str, url: str) -> int:
        """The queue's visibility timeout in seconds; never raises.

        When it cannot be read, the last value read is assumed (else SQS's default, 30), logged at debug level, until
        the attributes are due again.
        """
        now = self._clock()
        cached = self._attributes.get(url)
        if cached is not None and now - cached.read_at < ATTRIBUTES_TTL:
            return cached.visibility
        try:
            raw = self._get_attributes(queue, url)
        except TransportError as exc:
            seconds = cached.visibility if cached is not None else DEFAULT_VISIBILITY
            logger.debug(
                "eventbus: visibility timeout of %s unknown (%s); assuming %ds",
                queue,
                vendor_reason(exc.__cause__ or exc),
                seconds,
            )
            self._attributes[url] = _Attributes(now, seconds, None)
            return seconds
        return self._read(queue, url, raw, cached, now).visibility

    def dead_letter_url(self, queue: str, url: str) -> str | None:
        """The URL of the queue's dead-letter queue (``None``: it has no redrive policy).

        Raises:
            TransportError: the queue's attributes or the dead-letter queue's URL could not be read.
        """
        now = self._clock()
        cached = self._attributes.get(url)
        if cached is None or cached.raw is None or now - cached.read_at >= ATTRIBUTES_TTL:
            cached = self._read(queue, url, self._get_attributes(queue, url), cached, now)
        if cached.dead_letter_resolved:
            return cached.dead_letter_url
        target: str | None = None
        assert cached.raw is not None  # read above when the call had failed
        policy = cached.raw.get("RedrivePolicy")
        if policy:
            arn = json.loads(policy)["deadLetterTargetArn"]
            _, _, _, _, account, name = arn.split(":", 5)
            target = self._call(
                queue, lambda client: client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)
            )["QueueUrl"]
        self._attributes[url] = replace(cached, dead_letter_resolved=True, dead_letter_url=target)
        return target

    def send_to_dead_letter(self, queue: str, target_url: str, body: str, message_id: str, reason: str) -> None:
        """Send a copy of a message's ``body``, unchanged, to the dead-letter queue at ``target_url``.

        The copy carries ``eventbus-reason`` (``reason``, cut at 1000 characters), ``eventbus-source-queue``
        (``queue``) and ``eventbus-source-message-id`` (``message_id``) as message attributes.

        Raises:
            TransportError: SQS did not take the copy.
        """
        attributes = {
            "eventbus-reason": {
                "DataType": "String",
                "StringValue": reason[:_DEAD_LETTER_REASON_LIMIT] or "unknown",
            },
            "eventbus-source-queue": {"DataType": "String", "StringValue": queue},
            "eventbus-source-message-id": {"DataType": "String", "StringValue": message_id},
        }
        self._call(
            queue,
            lambda client: client.send_message(QueueUrl=target_url, MessageBody=body, MessageAttributes=attributes),
        )

    def change_visibility(self, queue: str, url: str, receipt_handle: str, seconds: int) -> None:
        """Make one received message invisible for ``seconds`` more (0: visible to every consumer now).

        Raises:
            TransportError: the call failed.
        """
        self._call(
            queue,
            lambda client: client.change_message_visibility(
                QueueUrl=url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
            ),
        )

    def delete_batch(self, queue: str, url: str, entries: Sequence[dict[str, Any]]) -> set[str]:
        """``DeleteMessageBatch`` of ``entries`` (``Id``, ``ReceiptHandle``); return the ``Id`` of those SQS refused.

        Raises:
            TransportError: the call failed as a whole.
        """
        response = self._call(queue, lambda client: client.delete_message_batch(QueueUrl=url, Entries=entries))
        return {str(failed.get("Id")) for failed in response.get("Failed", [])}

    def change_visibility_batch(self, queue: str, url: str, entries: Sequence[dict[str, Any]]) -> set[str]:
        """``ChangeMessageVisibilityBatch`` of ``entries`` (``Id``, ``ReceiptHandle``, ``VisibilityTimeout``); return
        the ``Id`` of those SQS refused.

        Raises:
            TransportError: the call failed as a whole.
        """
        response = self._call(
            queue, lambda client: client.change_message_visibility_batch(QueueUrl=url, Entries=entries)
        )
        return {str(failed.get("Id")) for failed in response.get("Failed", [])}

    def _get_attributes(self, queue: str, url: str) -> dict[str, str]:
        response = self._call(
            queue,
            lambda client: client.get_queue_attributes(
                QueueUrl=url, AttributeNames=["VisibilityTimeout", "RedrivePolicy"]
            ),
        )
        return dict(response.get("Attributes", {}))

    def _read(self, queue: str, url: str, raw: dict[str, str], previous: _Attributes | None, now: float) -> _Attributes:
        """Cache what a successful ``GetQueueAttributes`` said (the dead-letter URL is resolved when asked for)."""
        try:
            seconds = int(raw["VisibilityTimeout"])
        except (KeyError, ValueError) as exc:
            seconds = previous.visibility if previous is not None else DEFAULT_VISIBILITY
            logger.debug(
                "eventbus: visibility timeout of %s unknown (%s); assuming %ds", queue, vendor_reason(exc), seconds
            )
        entry = _Attributes(now, seconds, raw)
        self._attributes[url] = entry
        return entry

    def _call(self, queue: str, call: Callable[[Any], _T]) -> _T:
        """Make one SQS call with the client for ``queue``, translating the vendor's failure."""
        try:
            return call(self._client_for(queue))
        except SQS_CALL_ERRORS as exc:
            raise TransportError(str(exc)[:REASON_LIMIT]) from exc
