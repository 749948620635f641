"""Visibility: the heartbeat that keeps every held message invisible to other consumers, run on the event loop.

A held message (running, or prefetched and waiting for a pool slot) has its visibility extended by the queue's own
timeout once less than ``heartbeat_margin`` of it remains; extending stops when the message is acknowledged, released
or left for redelivery. The deadlines are :class:`~eventbus.celery.transport.heartbeat.VisibilityHeartbeat`'s (pure
scheduling); this module ticks it on the loop and sends its extensions through the acknowledgement batches, and counts
the extensions SQS confirmed (metric ``eventbus.visibility.extensions``).
"""

from __future__ import annotations

from typing import Any

from eventbus.adapters.aws.sqs import DEFAULT_VISIBILITY
from eventbus.celery.transport.base import ChannelBase
from eventbus.celery.transport.batching import Entry
from eventbus.celery.transport.heartbeat import VisibilityHeartbeat
from eventbus.celery.transport.logs import logger
from eventbus.core.metric_hooks import MetricHooks


class VisibilityMixin(ChannelBase):
    """The visibility heartbeat: which messages to extend, when, and what SQS answered."""

    #: Where confirmed extensions are counted: the process's telemetry (fetched once per channel).
    _heartbeat_metrics: MetricHooks

    def _init_visibility(self, options: dict[str, Any]) -> None:
        from eventbus.container import get_container

        self._heartbeat_metrics = get_container().telemetry()
        self._heartbeat_enabled = bool(options.get("heartbeat", True))
        self._heartbeat = VisibilityHeartbeat(margin=float(options.get("heartbeat_margin", 0.5)))
        self._heartbeat_timer = None
        self._heartbeat_interval = 0.0
        self._unheld_queues = set()

    def _watch_received(self, queue: str, q_url: str, messages: list[dict[str, Any]]) -> None:
        visibility = self._visibility_of(queue, q_url)
        if visibility >= 1:
            for message in messages:
                self._heartbeat.received(message["ReceiptHandle"], visibility)
            self._ensure_heartbeat()
        elif q_url not in self._unheld_queues:
            self._unheld_queues.add(q_url)
            logger.error(
                "eventbus: queue %s has a visibility timeout of 0 s: a received message is visible to every "
                "consumer at once, so handlers may run more than once; give the queue a visibility timeout",
                queue,
            )

    def _visibility_of(self, queue: str, q_url: str) -> int:
        """The queue's visibility timeout, read once a minute (a blocking call, rarely made)."""
        return self.sqs_queues.visibility_timeout(queue, q_url)

    def _ensure_heartbeat(self) -> None:
        if self.hub is None:
            return
        shortest = self._heartbeat.shortest_visibility() or DEFAULT_VISIBILITY
        # tick often enough that a due message is extended with at least a quarter of its timeout to spare
        interval = min(max(shortest * self._heartbeat.margin / 2, 0.2), 5.0)
        if self._heartbeat_timer is not None and interval >= self._heartbeat_interval:
            return
        if self._heartbeat_timer is not None:
            self._heartbeat_timer.cancel()
        self._heartbeat_interval = interval
        self._heartbeat_timer = self.hub.call_repeatedly(interval, self._beat)

    def held(self) -> list[str]:
        """Delivery tags of the messages this channel holds: delivered, neither acknowledged nor rejected."""
        qos = self.qos
        return [tag for tag in list(qos._delivered) if tag not in qos._dirty]

    def _beat(self) -> None:
        delivered = self.qos._delivered
        for tag, seconds in self._heartbeat.due(self.held()):
            message = delivered.get(tag)
            if message is not None and "sqs_message" in message.delivery_info:
                self.change_visibility(message.delivery_info, seconds)

    def _extensions_answered(self, batch: list[Entry], refused_ids: set[str]) -> None:
        """SQS answered a batch: confirmed extensions move their message's deadline, refused ones are due again."""
        extended = 0
        for i, entry in enumerate(batch):
            if entry.visibility:
                if str(i) in refused_ids:
                    self._heartbeat.extension_failed(entry.receipt_handle, refused=True)
                else:
                    self._heartbeat.extended(entry.receipt_handle)
                    extended += 1
        if extended:  # a batch is one queue's
            self._heartbeat_metrics.visibility_extended(queue=batch[0].queue, count=extended)

    def _extensions_failed(self, batch: list[Entry]) -> None:
        """A batch call failed: its extensions are due again, and the next beat comes soon (not a whole tick away)."""
        failed = [entry for entry in batch if entry.visibility]
        for entry in failed:
            self._heartbeat.extension_failed(entry.receipt_handle)
        if failed and self.hub is not None and not self.draining:
            self.hub.call_later(min(1.0, self._heartbeat_interval or 1.0), self._beat)
