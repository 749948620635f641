"""The acknowledgement seam: delete, release, leave for redelivery, dead-letter an SQS message.

Everything the consumer does to a message's fate goes through :class:`SqsAcknowledger`. It settles a delivery
through its channel's :class:`~eventbus.ports.DeliverySettlement` (eventbus's transport channel batches deletes and
releases; kombu's stock SQS channel is adapted by :class:`KombuChannelSettlement`), and makes its own SQS calls (the
dead-letter copy) through the channel's :class:`~eventbus.adapters.aws.sqs.SqsQueues`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from enum import Enum
from typing import Any

from kombu.message import Message

from eventbus.adapters.aws.sqs import SQS_CALL_ERRORS, SqsQueues
from eventbus.core.claim_check import CLAIM_CHECK_KEY
from eventbus.errors import TransportError
from eventbus.ports import DeliverySettlement

logger = logging.getLogger("eventbus.consumer")


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


class SqsSettlement(DeliverySettlement):
    """A :class:`~eventbus.ports.DeliverySettlement` over a kombu SQS channel, with the channel's SQS queue operations.

    eventbus's transport channel is one; :class:`KombuChannelSettlement` makes kombu's stock channel one.
    """

    #: The channel's SQS calls and its one cache of queue attributes.
    sqs_queues: SqsQueues


class KombuChannelSettlement(SqsSettlement):
    """Settlement over kombu's stock SQS channel, for ``SQSConsumer`` run without eventbus's transport: unbatched.

    ``forget`` is kombu's QoS reject without requeue (no SQS call); ``release`` makes one ``ChangeMessageVisibility``
    call (a failure is logged, and the delivery forgotten all the same); nothing is buffered, so ``flush`` has nothing
    to send; ``release_held`` releases every delivery the QoS still holds. ``draining`` stays False: calls are
    synchronous already.
    """

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.sqs_queues = SqsQueues(self._sqs_client)

    def _sqs_client(self, queue: str) -> Any:
        return self.channel.sqs(queue=queue)

    def forget(self, delivery_tag: str) -> None:
        """Drop the delivery from kombu's QoS without any SQS call."""
        self.channel.qos.reject(delivery_tag, requeue=False)

    def release(self, delivery_tag: str) -> bool:
        """``ChangeMessageVisibility`` to 0, then forget the delivery; False if the QoS does not hold it."""
        try:
            message = self.channel.qos.get(delivery_tag)
        except KeyError:
            return False
        try:
            self.sqs_queues.change_visibility(
                queue_name(message), queue_url(message), message.delivery_info["sqs_message"]["ReceiptHandle"], 0
            )
        except TransportError as exc:
            logger.warning("eventbus: could not release message %s: %s", sqs_message_id(message), exc)
        self.forget(delivery_tag)
        return True

    def release_held(self, keep: Callable[[str], bool] | None = None) -> int:
        """Release every delivery the QoS holds (delivered, not yet settled) except those ``keep`` names."""
        qos = self.channel.qos
        held = [tag for tag in list(qos._delivered) if tag not in qos._dirty]
        return sum(self.release(tag) for tag in held if keep is None or not keep(tag))

    def flush(self) -> None:
        """Nothing to send: every call of this settlement is made at once."""


class SqsAcknowledger:
    """Decides how an SQS message leaves the consumer's hands.

    The settlement of a message's channel is chosen once per channel: the channel itself when it is an
    :class:`SqsSettlement` (eventbus's transport), else a :class:`KombuChannelSettlement` over it.
    """

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._copies: dict[Future[_Copy], Message] = {}
        self._channel: Any = None
        self._settlement: SqsSettlement | None = None

    def settlement(self, channel: Any) -> SqsSettlement:
        """The settlement of ``channel`` (the consumer has one channel at a time: the last one is kept)."""
        if self._settlement is None or channel is not self._channel:
            self._settlement = channel if isinstance(channel, SqsSettlement) else KombuChannelSettlement(channel)
            self._channel = channel
        return self._settlement

    def ack(self, message: Message) -> None:
        """Delete the message (it was handled, or deliberately dropped)."""
        message.ack_log_error(logger, SQS_CALL_ERRORS)  # type: ignore[no-untyped-call]

    def leave_for_redelivery(self, message: Message) -> None:
        """Forget the message locally without touching SQS.

        It becomes visible again when its visibility timeout ends; SQS's redrive policy moves it
        to the dead-letter queue after ``maxReceiveCount`` receives. No hot loop: the retry
        delay is the visibility timeout.
        """
        self.settlement(message.channel).forget(message.delivery_tag)
        message._state = "REJECTED"

    def release_later(self, message: Message, seconds: int) -> None:
        """Make the message (held or not any more) visible again ``seconds`` from now (FIFO: a failed message and the
        ones waiting behind it, all at the same moment)."""
        self.settlement(message.channel).release_later(message.delivery_info, seconds)
        message._state = "REJECTED"

    def release(self, message: Message) -> None:
        """Make the message visible again now (visibility 0), for another consumer to take."""
        self.settlement(message.channel).release(message.delivery_tag)
        message._state = "REJECTED"

    def dead_letter(self, message: Message, reason: str) -> None:
        """Move the message to its queue's dead-letter queue, with the reason attached.

        The body is copied unchanged so it can be redriven. With no dead-letter queue the message is dropped
        (logged at error level); if the copy fails, it is left for SQS's own redrive after ``maxReceiveCount``
        receives. The SQS calls run on a thread of their own when the channel has an event loop: a slow SQS must not
        stop the loop (and the visibility heartbeat with it). Until the copy is done the message stays held, and
        extended, so no other consumer receives it meanwhile; it is deleted (or left) back on the loop.
        """
        # the copy points at the same claim-checked body (a redrive needs it): not deleted with this message
        message.delivery_info.pop(CLAIM_CHECK_KEY, None)
        settlement = self.settlement(message.channel)
        hub = message.channel.hub
        if hub is None or settlement.draining:
            self._finish(message, self._copy(settlement.sqs_queues, message, reason))
            return
        future = self._copier().submit(self._copy, settlement.sqs_queues, message, reason)
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

    @staticmethod
    def _copy(queues: SqsQueues, message: Message, reason: str) -> _Copy:
        """Copy the message to its dead-letter queue (blocking SQS calls; any thread)."""
        message_id, source = sqs_message_id(message), queue_name(message)
        try:
            target = queues.dead_letter_url(source, queue_url(message))
        except TransportError as exc:
            logger.error("eventbus: cannot find dead-letter queue of %s (%s); message %s left", source, exc, message_id)
            return _Copy.FAILED
        if target is None:
            return _Copy.NO_QUEUE
        body = message.delivery_info.get("sqs_message", {}).get("Body")
        if not isinstance(body, str):
            body = message.body.decode("utf-8", "replace") if isinstance(message.body, bytes) else str(message.body)
        try:
            queues.send_to_dead_letter(source, target, body, message_id, reason)
        except TransportError as exc:
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
