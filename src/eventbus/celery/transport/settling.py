"""Settling: what the consumer (and kombu) do to a delivery, turned into buffered SQS calls.

``basic_ack`` frees the prefetch slot at once and buffers a delete; a release buffers a visibility change to 0;
``forget`` drops a delivery locally without any SQS call. Each also stops the heartbeat of the message and polls a
parked queue again. The buffers are sent by :mod:`~eventbus.celery.transport.acknowledging`.
"""

from __future__ import annotations

from typing import Any

from kombu.transport.virtual import Channel as VirtualChannel

from eventbus.celery.transport.base import ChannelBase
from eventbus.celery.transport.batching import Entry
from eventbus.celery.transport.logs import MAX_VISIBILITY
from eventbus.core.claim_check import CLAIM_CHECK_KEY


class SettlingMixin(ChannelBase):
    """The channel's side of the acknowledgement seam (:class:`~eventbus.ports.DeliverySettlement`), and kombu's."""

    def basic_ack(self, delivery_tag: Any, multiple: bool = False) -> None:
        """Free the slot now, delete in a batch shortly."""
        try:
            message = self.qos.get(delivery_tag)
            info = message.delivery_info
            sqs_message = info["sqs_message"]
            queue_url = info["sqs_queue"]
        except KeyError:
            VirtualChannel.basic_ack(self, delivery_tag)
            return
        entry = Entry(sqs_message["ReceiptHandle"], str(sqs_message.get("MessageId", "?")), self._queue_of(info))
        entry.claim = info.get(CLAIM_CHECK_KEY)  # a claim-checked body, deleted after the message
        VirtualChannel.basic_ack(self, delivery_tag)
        # an acknowledged message can no longer be rejected: drop the consumer's Rejection, which refers back to the
        # message (a reference cycle per event that only the cyclic garbage collector would free)
        vars(message).pop("reject_log_error", None)
        self._heartbeat.forget(delivery_tag)
        self._buffer(self._deletes, queue_url, entry)
        self._slot_freed()
        if self.on_settled is not None:
            self.on_settled(delivery_tag, "deleted")

    def basic_reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        """kombu's reject, then poll again if that freed a slot."""
        super().basic_reject(delivery_tag, requeue=requeue)
        self._heartbeat.forget(delivery_tag)
        self._slot_freed()
        if self.on_settled is not None:
            self.on_settled(delivery_tag, "left")

    def forget(self, delivery_tag: Any) -> None:
        """Drop a delivery locally without any SQS call (it is redelivered after its visibility timeout)."""
        self._drop(delivery_tag, "left")

    def _drop(self, delivery_tag: Any, outcome: str) -> None:
        self.qos.reject(delivery_tag, requeue=False)
        self._heartbeat.forget(delivery_tag)
        self._slot_freed()
        if self.on_settled is not None:
            self.on_settled(delivery_tag, outcome)

    def change_visibility(self, delivery_info: dict[str, Any], seconds: int) -> None:
        """Buffer a visibility change (0 releases the message now) for a ``ChangeMessageVisibilityBatch``."""
        sqs_message = delivery_info["sqs_message"]
        entry = Entry(
            sqs_message["ReceiptHandle"], str(sqs_message.get("MessageId", "?")), self._queue_of(delivery_info), seconds
        )
        self._buffer(self._visibility, delivery_info["sqs_queue"], entry)

    def release(self, delivery_tag: Any) -> bool:
        """Make a held message visible to other consumers now (visibility 0, batched) and forget it here.

        Returns whether there was an SQS message to release.
        """
        info = self.qos.get(delivery_tag).delivery_info
        released = "sqs_message" in info
        if released:
            self.change_visibility(info, 0)
        self._drop(delivery_tag, "released" if released else "left")
        return released

    def release_later(self, delivery_info: dict[str, Any], seconds: int) -> None:
        """Visible again ``seconds`` from now (batched with the other visibility changes, in order), and forgotten
        here if still held."""
        if "sqs_message" not in delivery_info:
            return
        self.change_visibility(delivery_info, max(0, min(seconds, MAX_VISIBILITY)))
        tag = delivery_info["sqs_message"]["ReceiptHandle"]
        if tag in self.qos._delivered:
            self._drop(tag, "left")

    def _queue_of(self, info: dict[str, Any]) -> str:
        routing_key = info.get("routing_key")
        return str(self.canonical_queue_name(routing_key)) if routing_key else str(info["sqs_queue"]).rsplit("/", 1)[-1]
