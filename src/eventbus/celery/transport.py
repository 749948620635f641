"""eventbus's SQS transport: kombu's, with batched acknowledgements, a visibility heartbeat, and outage handling.

Selected by :func:`eventbus.celery.configure` (``broker_transport``); users keep ``sqs://`` URLs.

* **Batched deletes.** ``basic_ack`` frees the prefetch slot at once and buffers the receipt handle; buffered
  handles go out as ``DeleteMessageBatch`` (10 per call) when 10 are waiting for a queue or the oldest has waited
  ``ack_flush_interval`` seconds (default 0.05), through the worker's event loop, never blocking it.
* **The at-least-once window.** A worker killed after a task succeeded but before the flush loses at most
  ``ack_flush_interval`` seconds of acknowledgements: those messages are delivered again.
* **Continuous polling.** With the prefetch window full the queue is parked and polled again as soon as an
  acknowledgement frees a slot; every receive asks for 10 messages (SQS's maximum).
* **Visibility heartbeat.** Every message the worker holds, running or prefetched and waiting for a pool slot, has
  its visibility extended (``ChangeMessageVisibilityBatch``, by the queue's own timeout) once less than half of it
  remains, so a handler slower than the visibility timeout is never handed to a second worker. Extending stops when
  the message is acknowledged, released or left for redelivery. ``heartbeat=False`` turns it off.
* **Outages.** A receive that fails (connection refused, timeout, 5xx, any error) is logged once, retried with
  exponential backoff (``outage_backoff_max`` seconds at most, default 5) instead of at once, and the recovery is
  logged with the outage's length. Deletes and releases whose call fails are retried with backoff for up to
  ``ack_retry_window`` seconds (default 60), then logged with the message id (SQS redelivers those messages).
* **Shutdown.** Warm shutdown switches sends to synchronous calls (the event loop no longer polls sockets) and, when
  the channel closes, every message still held and not running is released (visibility 0) so another worker takes it
  at once. kombu's own "restore" of unacknowledged messages (which re-sends copies on SQS) is disabled.

Transport options: ``ack_batch_size`` (1-10), ``ack_flush_interval``, ``heartbeat``, ``heartbeat_margin``
(fraction of the timeout left when a message is extended, default 0.5), ``outage_backoff_max``,
``ack_retry_window``.
"""

from __future__ import annotations

import logging
import time
from collections import namedtuple
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from kombu.transport import SQS
from kombu.transport.virtual import Channel as VirtualChannel
from vine import promise

from eventbus.celery.batching import SQS_BATCH_LIMIT, BatchBuffer, Entry
from eventbus.celery.heartbeat import Backoff, VisibilityHeartbeat

logger = logging.getLogger("eventbus.transport")

_Queue = namedtuple("_Queue", "id")
_Receipt = namedtuple("_Receipt", "id receipt_handle")

#: SQS's own default, used until a queue's attribute could be read.
_DEFAULT_VISIBILITY = 30
_VISIBILITY_TTL = 300.0
_REPEAT_LOG_EVERY = 30.0
_REASON_LIMIT = 300


def _reason(exc: object) -> str:
    text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    return text[:_REASON_LIMIT]


class Channel(SQS.Channel):
    """kombu's SQS channel with batched deletes and visibility changes, a heartbeat, and outage backoff."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options = self.transport_options
        size = int(options.get("ack_batch_size", SQS_BATCH_LIMIT))
        delay = float(options.get("ack_flush_interval", 0.05))
        self._deletes = BatchBuffer(size, delay)
        self._visibility = BatchBuffer(size, delay)
        self._flush_timer: Any = None
        self._parked: set[str] = set()
        self._heartbeat_enabled = bool(options.get("heartbeat", True))
        self._heartbeat = VisibilityHeartbeat(margin=float(options.get("heartbeat_margin", 0.5)))
        self._heartbeat_timer: Any = None
        self._heartbeat_interval = 0.0
        self._visibility_cache: dict[str, tuple[int, float]] = {}
        self._unheld_queues: set[str] = set()
        backoff_max = float(options.get("outage_backoff_max", 5.0))
        self._receive_backoff = Backoff(initial=min(0.5, backoff_max), maximum=backoff_max)
        self._retry_window = float(options.get("ack_retry_window", 60.0))
        self._last_outage_log = 0.0
        self._last_ack_failure_log = 0.0
        #: Set by the consumer: is the message with this delivery tag being run by a task right now?
        self.in_progress: Callable[[str], bool] | None = None
        #: Warm shutdown has begun: send synchronously, the event loop no longer polls sockets.
        self.draining = False
        # Unacknowledged messages are released (visibility 0) by close(); kombu would re-send copies instead.
        self.qos.restore_at_shutdown = False

    # -- receiving -------------------------------------------------------------------------------------------

    def _schedule_queue(self, queue: str) -> None:
        if queue not in self._active_queues:
            return
        if self.qos.can_consume():
            self._get_bulk_async(queue, callback=promise(self._loop1, (queue,)))
        else:
            self._parked.add(queue)  # polled again by the acknowledgement that frees a slot

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
        outage = self._receive_backoff.succeeded()
        if outage is not None:
            logger.warning("eventbus: SQS queue %s reachable again after %.1fs; consuming", queue, outage)
        messages = response.get("Messages") or []
        if messages and self._heartbeat_enabled:
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
        count = self._on_messages_ready(q_url, queue, response)
        if callback is not None:
            callback(count)

    def _on_receive_failed(self, queue: str, q_url: str, callback: Any, error: object) -> None:
        delay = self._receive_backoff.failed()
        now = time.monotonic()
        if self._receive_backoff.failures == 1:
            self._last_outage_log = now
            logger.warning(
                "eventbus: cannot receive from SQS queue %s (%s); retrying with backoff, next in %.1fs",
                queue,
                _reason(error),
                delay,
            )
        elif now - self._last_outage_log >= _REPEAT_LOG_EVERY:
            self._last_outage_log = now
            since = self._receive_backoff.failing_since or now
            logger.warning(
                "eventbus: SQS queue %s unreachable for %.0fs (%d attempts; %s)",
                queue,
                now - since,
                self._receive_backoff.failures,
                _reason(error),
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
        tag = message.get("ReceiptHandle")
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

    def _visibility_of(self, queue: str, q_url: str) -> int:
        """The queue's visibility timeout, read once every few minutes (a blocking call, rarely made)."""
        now = time.monotonic()
        cached = self._visibility_cache.get(q_url)
        if cached is not None and now - cached[1] < _VISIBILITY_TTL:
            return cached[0]
        try:
            attributes = self.sqs(queue=queue).get_queue_attributes(
                QueueUrl=q_url, AttributeNames=["VisibilityTimeout"]
            )["Attributes"]
            seconds = int(attributes["VisibilityTimeout"])
        except (ClientError, BotoCoreError, OSError, KeyError, ValueError) as exc:
            seconds = cached[0] if cached is not None else _DEFAULT_VISIBILITY
            logger.debug("eventbus: visibility timeout of %s unknown (%s); assuming %ds", queue, _reason(exc), seconds)
        self._visibility_cache[q_url] = (seconds, now)
        return seconds

    def _slot_freed(self) -> None:
        if self._parked and self.hub is not None:
            parked, self._parked = self._parked, set()
            for queue in parked:
                self.hub.call_soon(self._schedule_queue, queue)

    # -- heartbeat -------------------------------------------------------------------------------------------

    def _ensure_heartbeat(self) -> None:
        if self.hub is None:
            return
        shortest = self._heartbeat.shortest_visibility() or _DEFAULT_VISIBILITY
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

    # -- acknowledgements ------------------------------------------------------------------------------------

    def basic_ack(self, delivery_tag: Any, multiple: bool = False) -> None:
        """Free the slot now, delete in a batch shortly."""
        try:
            info = self.qos.get(delivery_tag).delivery_info
            sqs_message = info["sqs_message"]
            queue_url = info["sqs_queue"]
        except KeyError:
            VirtualChannel.basic_ack(self, delivery_tag)
            return
        entry = Entry(sqs_message["ReceiptHandle"], str(sqs_message.get("MessageId", "?")), self._queue_of(info))
        VirtualChannel.basic_ack(self, delivery_tag)
        self._heartbeat.forget(delivery_tag)
        self._buffer(self._deletes, queue_url, entry)
        self._slot_freed()

    def basic_reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        """kombu's reject, then poll again if that freed a slot."""
        super().basic_reject(delivery_tag, requeue=requeue)
        self._heartbeat.forget(delivery_tag)
        self._slot_freed()

    def forget(self, delivery_tag: Any) -> None:
        """Drop a delivery locally without any SQS call (it is redelivered after its visibility timeout)."""
        self.qos.reject(delivery_tag, requeue=False)
        self._heartbeat.forget(delivery_tag)
        self._slot_freed()

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
        self.forget(delivery_tag)
        return released

    def release_held(self, keep: Callable[[str], bool] | None = None) -> int:
        """Release every held message except those ``keep`` names; return how many."""
        return sum(self.release(tag) for tag in self.held() if keep is None or not keep(tag))

    def _queue_of(self, info: dict[str, Any]) -> str:
        routing_key = info.get("routing_key")
        return str(self.canonical_queue_name(routing_key)) if routing_key else str(info["sqs_queue"]).rsplit("/", 1)[-1]

    # -- flushing --------------------------------------------------------------------------------------------

    def _buffer(self, buffer: BatchBuffer, queue_url: str, entry: Entry) -> None:
        full = buffer.add(queue_url, entry)
        if full is not None:
            self._send(buffer, queue_url, full)
        if len(self._deletes) or len(self._visibility):
            self._arm_timer()

    def _arm_timer(self) -> None:
        if self.hub is None:
            self.flush()  # no event loop (a plain kombu consumer): nothing would flush later
            return
        if self._flush_timer is None:
            self._flush_timer = self.hub.call_later(self._deletes.max_delay, self._on_timer)

    def _on_timer(self) -> None:
        self._flush_timer = None
        for buffer in (self._deletes, self._visibility):
            for queue_url, batch in buffer.due():
                self._send(buffer, queue_url, batch)
        if len(self._deletes) or len(self._visibility):
            self._arm_timer()

    def _send(self, buffer: BatchBuffer, queue_url: str, batch: list[Entry]) -> None:
        if self.hub is None or self.draining:
            self._send_sync(buffer, queue_url, batch)
            return
        receipts = [_Receipt(str(i), e.receipt_handle) for i, e in enumerate(batch)]
        connection = self.asynsqs(queue=batch[0].queue)
        if buffer is self._deletes:
            call = connection.delete_message_batch
            args: tuple[Any, ...] = (_Queue(queue_url), receipts)
        else:
            call = connection.change_message_visibility_batch
            args = (_Queue(queue_url), [(r, e.visibility) for r, e in zip(receipts, batch, strict=True)])
        call(
            *args,
            callback=promise(
                self._on_batch_done,
                (buffer, queue_url, batch),
                on_error=lambda exc, *_: self._on_batch_error(buffer, queue_url, batch, exc),
            ),
        )

    def _on_batch_done(self, buffer: BatchBuffer, queue_url: str, batch: list[Entry], response: Any) -> None:
        failed_ids = (
            {str(f.get("Id")) for f in (response or {}).get("Failed", [])} if isinstance(response, dict) else set()
        )
        self._extensions_answered(batch, failed_ids)
        if failed_ids:
            failed = [e for i, e in enumerate(batch) if str(i) in failed_ids]
            self._retry(buffer, queue_url, failed, "SQS reported the entries as failed")

    def _on_batch_error(self, buffer: BatchBuffer, queue_url: str, batch: list[Entry], exc: Any) -> None:
        """The whole call failed (SQS unreachable, throttled, 5xx): retry with backoff within the retry window."""
        reason = _reason(exc)
        now = time.monotonic()
        keep: list[Entry] = []
        lost: list[Entry] = []
        self._extensions_failed(batch)
        for entry in batch:
            if entry.visibility:  # a heartbeat: sent again by the next beat (see _extensions_failed)
                continue
            entry.attempts += 1
            entry.failing_since = entry.failing_since or now
            (keep if now - entry.failing_since < self._retry_window else lost).append(entry)
        self._log_lost(buffer, lost, reason)
        if not keep:
            return
        if now - self._last_ack_failure_log >= _REPEAT_LOG_EVERY:
            self._last_ack_failure_log = now
            logger.warning(
                "eventbus: %s of %d message(s) on queue %s failed (%s); retrying for up to %.0fs",
                self._what(buffer),
                len(keep),
                keep[0].queue,
                reason,
                self._retry_window,
            )
        delay = min(0.25 * 2 ** min(max(e.attempts for e in keep), 8), self._receive_backoff.maximum)
        if self.hub is not None:
            self.hub.call_later(delay, self._requeue, buffer, queue_url, keep)

    def _requeue(self, buffer: BatchBuffer, queue_url: str, entries: list[Entry]) -> None:
        for entry in entries:
            self._buffer(buffer, queue_url, entry)

    def _retry(self, buffer: BatchBuffer, queue_url: str, entries: list[Entry], reason: str) -> None:
        # SQS refused these entries (stale receipt handle, message gone): a few attempts, then let SQS redeliver
        heartbeats = [e for e in entries if e.visibility]
        for entry in heartbeats:
            logger.debug("eventbus: visibility extension of message %s refused (%s)", entry.message_id, reason)
        for entry in buffer.retry(queue_url, [e for e in entries if not e.visibility]):
            logger.warning(
                "eventbus: %s of message %s on queue %s failed after %d attempts (%s); SQS will redeliver it",
                self._what(buffer),
                entry.message_id,
                entry.queue,
                entry.attempts,
                reason,
            )
        if len(buffer):
            self._arm_timer()

    def _extensions_answered(self, batch: list[Entry], refused_ids: set[str]) -> None:
        """SQS answered a batch: confirmed extensions move their message's deadline, refused ones are due again."""
        for i, entry in enumerate(batch):
            if entry.visibility:
                if str(i) in refused_ids:
                    self._heartbeat.extension_failed(entry.receipt_handle, refused=True)
                else:
                    self._heartbeat.extended(entry.receipt_handle)

    def _extensions_failed(self, batch: list[Entry]) -> None:
        """A batch call failed: its extensions are due again, and the next beat comes soon (not a whole tick away)."""
        failed = [entry for entry in batch if entry.visibility]
        for entry in failed:
            self._heartbeat.extension_failed(entry.receipt_handle)
        if failed and self.hub is not None and not self.draining:
            self.hub.call_later(min(1.0, self._heartbeat_interval or 1.0), self._beat)

    def _what(self, buffer: BatchBuffer) -> str:
        return "delete" if buffer is self._deletes else "release"

    def _send_sync(self, buffer: BatchBuffer, queue_url: str, batch: list[Entry]) -> None:
        client: Any = self.sqs(queue=batch[0].queue)
        try:
            entries: list[dict[str, Any]]
            if buffer is self._deletes:
                entries = [{"Id": str(i), "ReceiptHandle": e.receipt_handle} for i, e in enumerate(batch)]
                response = client.delete_message_batch(QueueUrl=queue_url, Entries=entries)
            else:
                entries = [
                    {"Id": str(i), "ReceiptHandle": e.receipt_handle, "VisibilityTimeout": e.visibility}
                    for i, e in enumerate(batch)
                ]
                response = client.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
        except Exception as exc:
            self._extensions_failed(batch)
            self._log_lost(buffer, [e for e in batch if not e.visibility], _reason(exc))
            return
        failed_ids = {str(f.get("Id")) for f in response.get("Failed", [])}
        self._extensions_answered(batch, failed_ids)
        lost = [e for i, e in enumerate(batch) if str(i) in failed_ids and not e.visibility]
        self._log_lost(buffer, lost, "SQS reported them as failed")

    def _log_lost(self, buffer: BatchBuffer, entries: list[Entry], reason: str) -> None:
        for entry in entries:
            logger.warning(
                "eventbus: %s of message %s on queue %s failed (%s); SQS will redeliver it",
                self._what(buffer),
                entry.message_id,
                entry.queue,
                reason,
            )

    def flush(self) -> None:
        """Send everything buffered now, synchronously (shutdown, connection loss, no event loop)."""
        for buffer in (self._deletes, self._visibility):
            for queue_url, batch in buffer.due(everything=True):
                self._send_sync(buffer, queue_url, batch)

    def close(self) -> None:
        """Release held messages that are not running, flush buffered acknowledgements, then close."""
        for timer in (self._flush_timer, self._heartbeat_timer):
            if timer is not None:
                timer.cancel()
        self._flush_timer = self._heartbeat_timer = None
        self.draining = True
        try:
            released = self.release_held(self.in_progress)
            if released:
                logger.info("eventbus: released %d unstarted message(s) for other workers at channel close", released)
            self.flush()
        finally:
            super().close()


class Transport(SQS.Transport):
    """kombu's SQS transport with :class:`Channel`."""

    Channel = Channel
