"""Receiving: polling each queue, parking it on a full prefetch window, outage backoff, one message at a time.

Every receive asks SQS for 10 messages (its maximum). With the prefetch window full a queue is parked and polled
again as soon as an acknowledgement frees a slot. A receive that fails is logged once, retried with exponential
backoff, and its recovery logged with the outage's length. Each received message is handed to the consumer on its
own: a message kombu cannot convert goes on raw, and what goes wrong with one stays with that one.

The channel keeps when SQS last answered a receive (``last_received_at``) and which queues' receives are failing since
when (``unreachable``): the worker's health file reads them (:mod:`eventbus.celery.health`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from vine import promise

from eventbus.celery.transport.base import ChannelBase
from eventbus.celery.transport.batching import SQS_BATCH_LIMIT
from eventbus.celery.transport.heartbeat import Backoff
from eventbus.celery.transport.logs import REPEAT_LOG_EVERY, logger, reason

#: After a receive that brought messages, the next one is issued this much later (a timer) rather than at once. kombu
#: runs ready callbacks before it polls, and only a poll writes received jobs into the pool processes' pipes: issued
#: at once, building, signing and sending the next ReceiveMessage (0.7 ms) sat in front of 99% of hand-offs
#: (bench/latency.py --trace: 1.35 ms from Celery's strategy to the pool write at 40 events/s; 0.25 ms with this).
RECEIVE_AFTER_HANDOFF = 0.0005


class ReceivingMixin(ChannelBase):
    """Scheduling receives, their outcome, and the hand-off of each message to the consumer."""

    def _init_receiving(self, options: dict[str, Any]) -> None:
        self._parked = set()
        backoff_max = float(options.get("outage_backoff_max", 5.0))
        self._receive_backoff = Backoff(initial=min(0.5, backoff_max), maximum=backoff_max)
        self._last_outage_log = 0.0
        self.last_received_at = None
        self.unreachable = {}

    def _schedule_queue(self, queue: str) -> None:
        if queue not in self._active_queues:
            return
        if self.qos.can_consume():
            self._get_bulk_async(queue, callback=promise(self._loop1, (queue,)))
        else:
            self._parked.add(queue)  # polled again by the acknowledgement that frees a slot

    def _loop1(self, queue: str, messages_fetched: Any = None) -> None:
        """kombu's scheduling of the next receive, with the one after a receive that brought messages put behind the
        event loop's next poll (which hands those messages to the pool)."""
        if messages_fetched and self.hub is not None:
            self.hub.call_later(RECEIVE_AFTER_HANDOFF, self._schedule_queue, queue)
            return
        super()._loop1(queue, messages_fetched)

    def _get_message_estimate(self, max_if_unlimited: int = SQS_BATCH_LIMIT) -> int:
        return SQS_BATCH_LIMIT if self.qos.can_consume() else 0

    def _get_async(self, queue: str, count: int = 1, callback: Any = None) -> Any:
        q_url = self._new_queue(queue)
        qname = self.canonical_queue_name(queue)
        return self._get_from_sqs(
            queue_name=qname,
            queue_url=q_url,
            count=count,
            connection=self.asynsqs(queue=qname),
            callback=promise(self._on_received, (queue, q_url, callback), on_error=self._on_receive_failed),
        )

    def _on_received(self, queue: str, q_url: str, callback: Any, response: Any) -> None:
        if not isinstance(response, dict):
            # kombu's async client turns a refused connection (HTTP 599), timeouts and 5xx into an empty list
            self._on_receive_failed(queue, q_url, callback, "no response: connection refused, timeout or 5xx")
            return
        self.last_received_at = time.time()
        self.unreachable.pop(queue, None)
        outage = self._receive_backoff.succeeded()
        if outage is not None:
            logger.warning("eventbus: SQS queue %s reachable again after %.1fs; consuming", queue, outage)
        messages = response.get("Messages") or []
        if messages and self._heartbeat_enabled:
            self._watch_received(queue, q_url, messages)
        count = self._on_messages_ready(q_url, queue, response)
        if callback is not None:
            callback(count)

    def _on_receive_failed(self, queue: str, q_url: str, callback: Any, error: object) -> None:
        self.unreachable.setdefault(queue, time.time())
        delay = self._receive_backoff.failed()
        now = time.monotonic()
        if self._receive_backoff.failures == 1:
            self._last_outage_log = now
            logger.warning(
                "eventbus: cannot receive from SQS queue %s (%s); retrying with backoff, next in %.1fs",
                queue,
                reason(error),
                delay,
            )
        elif now - self._last_outage_log >= REPEAT_LOG_EVERY:
            self._last_outage_log = now
            since = self._receive_backoff.failing_since or now
            logger.warning(
                "eventbus: SQS queue %s unreachable for %.0fs (%d attempts; %s)",
                queue,
                now - since,
                self._receive_backoff.failures,
                reason(error),
            )
        if self.hub is not None:
            self.hub.call_later(delay, self._schedule_queue, queue)

    def _prepare_json_payload(self, text: Any) -> dict[str, Any]:
        """kombu's check for a kombu-encoded body, total: deep nesting or odd bytes are just "not kombu's"."""
        try:
            return dict(super()._prepare_json_payload(text))
        except Exception:  # RecursionError, UnicodeDecodeError...: the consumer dead-letters the body with a reason
            return {}

    def _message_to_python(self, message: dict[str, Any], queue_name: str, q_url: str) -> Any:
        """kombu's conversion; a body it cannot convert is handed on raw, so one message never fails a receive.

        The routing key is the queue the message was received from, whatever the body claims (a body can carry its
        own ``delivery_info``).
        """
        try:
            payload = super()._message_to_python(message, queue_name, q_url)
            payload["properties"]["delivery_info"]["routing_key"] = queue_name
            return payload
        except Exception:
            return self._raw_payload(message, queue_name, q_url)

    def _raw_payload(self, message: dict[str, Any], queue_name: str, q_url: str) -> Any:
        raw = message.get("Body", "")
        text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8", "replace")
        payload = self._envelope_payload({}, text, message, q_url)
        payload["properties"]["delivery_info"]["routing_key"] = queue_name
        return payload

    def _on_messages_ready(self, queue: str, qname: str, messages: Any) -> int:
        """Hand each received message to the consumer on its own: what goes wrong with one stays with that one."""
        received = messages.get("Messages") or []
        callback = self.connection._callbacks.get(qname)
        if not received or callback is None:
            return int(super()._on_messages_ready(queue, qname, messages))
        for message in received:
            self._deliver(message, qname, queue, callback)
        return len(received)

    def _deliver(self, message: dict[str, Any], qname: str, q_url: str, callback: Callable[[Any], Any]) -> None:
        tag: Any = message.get("ReceiptHandle")
        try:
            callback(self._message_to_python(message, qname, q_url))
            return
        except Exception as exc:
            error: Exception = exc
        if tag not in self.qos._delivered:
            # kombu could not make a message of it (an encoding it does not know...): the consumer judges it raw
            try:
                callback(self._raw_payload(message, qname, q_url))
                return
            except Exception as exc:
                error = exc
        # the consumer could not settle it either (it never should): SQS redelivers it, and its redrive policy moves
        # it to the dead-letter queue after maxReceiveCount receives; the rest of the receive goes on
        logger.error(
            "eventbus: message %s from queue %s could not be handed to the consumer (%s); left for redelivery",
            message.get("MessageId", "?"),
            qname,
            type(error).__name__,
            exc_info=True,
        )
        if tag in self.qos._delivered and tag not in self.qos._dirty:
            self.forget(tag)

    def _slot_freed(self) -> None:
        if self._parked and self.hub is not None:
            parked, self._parked = self._parked, set()
            for queue in parked:
                self.hub.call_soon(self._schedule_queue, queue)
