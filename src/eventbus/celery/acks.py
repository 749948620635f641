"""The acknowledgement seam: delete, release, leave for redelivery, dead-letter an SQS message.

Everything the consumer does to a message's fate goes through :class:`SqsAcknowledger`, so
batching (``DeleteMessageBatch``, ``ChangeMessageVisibilityBatch``) can replace the calls here
without touching the routing logic.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from enum import Enum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from kombu.message import Message

logger = logging.getLogger("eventbus.consumer")

_DLQ_CACHE_TTL = 60.0
_TRANSPORT_ERRORS = (ClientError, BotoCoreError, OSError)


class _Copy(Enum):
    """How a dead-letter copy ended."""

    COPIED = "copied"
    NO_QUEUE = "no dead-letter queue"
    FAILED = "failed"


def sqs_message_id(message: Message) -> str:
    """The SQS MessageId of a kombu message received from SQS (``"?"`` if unknown)."""
    sqs = message.delivery_info.get("sqs_message") or {}
    return str(sqs.get("MessageId", "?"))


def queue_url(message: Message) -> str:
    """The URL of the queue the message came from."""
    return str(message.delivery_info.get("sqs_queue", ""))


def queue_name(message: Message) -> str:
    """The name of the queue the message came from."""
    routing_key = message.delivery_info.get("routing_key")
    return str(routing_key) if routing_key else queue_url(message).rstrip("/").rsplit("/", 1)[-1]


class SqsAcknowledger:
    """Decides how an SQS message leaves the consumer's hands."""

    def __init__(self) -> None:
        self._dead_letter_urls: dict[str, tuple[str | None, float]] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._copies: dict[Future[_Copy], Message] = {}

    def ack(self, message: Message) -> None:
        """Delete the message (it was handled, or deliberately dropped)."""
        message.ack_log_error(logger, _TRANSPORT_ERRORS)  # type: ignore[no-untyped-call]

    def leave_for_redelivery(self, message: Message) -> None:
        """Forget the message locally without touching SQS.

        It becomes visible again when its visibility timeout ends; SQS's redrive policy moves it
        to the dead-letter queue after ``maxReceiveCount`` receives. No hot loop: the retry
        delay is the visibility timeout.
        """
        channel = message.channel
        if hasattr(channel, "forget"):  # eventbus's transport: also resumes polling on the freed slot
            channel.forget(message.delivery_tag)
        else:
            channel.qos.reject(message.delivery_tag, requeue=False)
        message._state = "REJECTED"

    def release(self, message: Message) -> None:
        """Make the message visible again now (visibility 0), for another consumer to take."""
        if hasattr(message.channel, "release"):  # eventbus's transport batches it
            message.channel.release(message.delivery_tag)
            message._state = "REJECTED"
            return
        try:
            client = message.channel.sqs(queue=queue_name(message))
            client.change_message_visibility(
                QueueUrl=queue_url(message),
                ReceiptHandle=message.delivery_info["sqs_message"]["ReceiptHandle"],
                VisibilityTimeout=0,
            )
        except _TRANSPORT_ERRORS as exc:
            logger.warning("eventbus: could not release message %s: %s", sqs_message_id(message), exc)
        self.leave_for_redelivery(message)

    def reject_callback(self, message: Message) -> Any:
        """A replacement for ``message.reject_log_error`` that never deletes the message.

        kombu's SQS channel deletes a message rejected without requeue when its queue has no
        redrive policy, which would lose a failed event; here a failed event is left for
        redelivery and a lost worker's event is released at once.
        """

        def reject_log_error(_logger: Any, _errors: Any, requeue: bool = False) -> None:
            if requeue:
                self.release(message)
            else:
                self.leave_for_redelivery(message)

        return reject_log_error

    def dead_letter(self, message: Message, reason: str) -> None:
        """Move the message to its queue's dead-letter queue, with the reason attached.

        The body is copied unchanged so it can be redriven. With no dead-letter queue the message is dropped
        (logged at error level); if the copy fails, it is left for SQS's own redrive after ``maxReceiveCount``
        receives. The SQS calls run on a thread of their own when the channel has an event loop: a slow SQS must not
        stop the loop (and the visibility heartbeat with it). Until the copy is done the message stays held, and
        extended, so no other consumer receives it meanwhile; it is deleted (or left) back on the loop.
        """
        hub = getattr(message.channel, "hub", None)
        if hub is None or getattr(message.channel, "draining", False):
            self._finish(message, self._copy(message, reason))
            return
        future = self._copier().submit(self._copy, message, reason)
        self._copies[future] = message
        future.add_done_callback(lambda done: hub.call_soon(self._on_copied, done))

    def _copier(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eventbus-dead-letter")
        return self._executor

    def _on_copied(self, done: Future[_Copy]) -> None:
        message = self._copies.pop(done, None)
        if message is not None:  # else settled by wait_for_copies
            self._finish(message, done.result())

    def wait_for_copies(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for dead-letter copies on their way, and settle their messages now.

        For shutdown: the event loop that would settle them is stopping.
        """
        pending = list(self._copies)
        if not pending:
            return
        finished, _ = wait(pending, timeout=timeout)
        for future in finished:
            message = self._copies.pop(future, None)
            if message is not None:
                self._finish(message, future.result())

    def _copy(self, message: Message, reason: str) -> _Copy:
        """Copy the message to its dead-letter queue (blocking SQS calls; any thread)."""
        message_id, source = sqs_message_id(message), queue_name(message)
        try:
            target = self._dead_letter_url(message)
        except _TRANSPORT_ERRORS as exc:
            logger.error("eventbus: cannot find dead-letter queue of %s (%s); message %s left", source, exc, message_id)
            return _Copy.FAILED
        if target is None:
            return _Copy.NO_QUEUE
        body = message.delivery_info.get("sqs_message", {}).get("Body")
        if not isinstance(body, str):
            body = message.body.decode("utf-8", "replace") if isinstance(message.body, bytes) else str(message.body)
        try:
            message.channel.sqs(queue=source).send_message(
                QueueUrl=target,
                MessageBody=body,
                MessageAttributes={
                    "eventbus-reason": {"DataType": "String", "StringValue": reason[:1000] or "unknown"},
                    "eventbus-source-queue": {"DataType": "String", "StringValue": source},
                    "eventbus-source-message-id": {"DataType": "String", "StringValue": message_id},
                },
            )
        except _TRANSPORT_ERRORS as exc:
            logger.error(
                "eventbus: could not copy message %s from %s to its dead-letter queue (%s); left for SQS redrive",
                message_id,
                source,
                exc,
            )
            return _Copy.FAILED
        return _Copy.COPIED

    def _finish(self, message: Message, outcome: _Copy) -> None:
        """Settle a dead-lettered message once its copy is done (on the event loop)."""
        if message.acknowledged:  # released at shutdown meanwhile
            return
        if outcome is _Copy.FAILED:
            self.leave_for_redelivery(message)
            return
        if outcome is _Copy.NO_QUEUE:
            logger.error(
                "eventbus: queue %s has no dead-letter queue; message %s dropped",
                queue_name(message),
                sqs_message_id(message),
            )
        self.ack(message)

    def _dead_letter_url(self, message: Message) -> str | None:
        url = queue_url(message)
        cached = self._dead_letter_urls.get(url)
        now = time.monotonic()
        if cached is not None and now - cached[1] < _DLQ_CACHE_TTL:
            return cached[0]
        client = message.channel.sqs(queue=queue_name(message))
        attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"]).get("Attributes", {})
        target: str | None = None
        policy = attributes.get("RedrivePolicy")
        if policy:
            arn = json.loads(policy)["deadLetterTargetArn"]
            _, _, _, _, account, name = arn.split(":", 5)
            target = client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        self._dead_letter_urls[url] = (target, now)
        return target
