"""eventbus's SQS transport: kombu's, with batched acknowledgements and polling that never idles on a full window.

Selected by :func:`eventbus.celery.configure` (``broker_transport``); users keep ``sqs://`` URLs.

* **Batched deletes.** ``basic_ack`` frees the prefetch slot at once and buffers the receipt handle; buffered
  handles go out as ``DeleteMessageBatch`` (10 per call) when 10 are waiting for a queue or the oldest has waited
  ``ack_flush_interval`` seconds (default 0.05), through the worker's event loop, never blocking it.
  Entries SQS reports as ``Failed`` and calls that fail are retried (3 attempts), then logged with the message
  id; the message is then redelivered after its visibility timeout, so at-least-once holds.
* **The at-least-once window.** A worker killed after a task succeeded but before the flush loses at most
  ``ack_flush_interval`` seconds of acknowledgements: those messages are delivered again. Buffers are flushed
  synchronously on channel close (warm shutdown, connection loss).
* **Continuous polling.** With the prefetch window full, kombu waits ``polling_interval`` before looking again;
  here the queue is parked and polled again as soon as an acknowledgement frees a slot, and every receive asks
  for 10 messages (SQS's maximum), so the window may be over-filled by up to 9 messages.
* **Batched visibility changes.** :meth:`Channel.change_visibility` buffers ``ChangeMessageVisibilityBatch``
  entries the same way (releases, and later heartbeats).

Transport options: ``ack_batch_size`` (1-10, default 10), ``ack_flush_interval`` (seconds, default 0.05).
"""

from __future__ import annotations

import logging
from collections import namedtuple
from typing import Any

from kombu.transport import SQS
from kombu.transport.virtual import Channel as VirtualChannel
from vine import promise

from eventbus.celery.batching import SQS_BATCH_LIMIT, BatchBuffer, Entry

logger = logging.getLogger("eventbus.transport")

_Queue = namedtuple("_Queue", "id")
_Receipt = namedtuple("_Receipt", "id receipt_handle")


class Channel(SQS.Channel):
    """kombu's SQS channel with batched deletes and visibility changes, and slot-driven polling."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options = self.transport_options
        size = int(options.get("ack_batch_size", SQS_BATCH_LIMIT))
        delay = float(options.get("ack_flush_interval", 0.05))
        self._deletes = BatchBuffer(size, delay)
        self._visibility = BatchBuffer(size, delay)
        self._flush_timer: Any = None
        self._parked: set[str] = set()

    # -- polling ---------------------------------------------------------------------------------------------

    def _schedule_queue(self, queue: str) -> None:
        if queue not in self._active_queues:
            return
        if self.qos.can_consume():
            self._get_bulk_async(queue, callback=promise(self._loop1, (queue,)))
        else:
            self._parked.add(queue)  # polled again by the acknowledgement that frees a slot

    def _get_message_estimate(self, max_if_unlimited: int = SQS_BATCH_LIMIT) -> int:
        return SQS_BATCH_LIMIT if self.qos.can_consume() else 0

    def _slot_freed(self) -> None:
        if self._parked and self.hub is not None:
            parked, self._parked = self._parked, set()
            for queue in parked:
                self.hub.call_soon(self._schedule_queue, queue)

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
        self._buffer(self._deletes, queue_url, entry)
        self._slot_freed()

    def basic_reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        """kombu's reject, then poll again if that freed a slot."""
        super().basic_reject(delivery_tag, requeue=requeue)
        self._slot_freed()

    def forget(self, delivery_tag: Any) -> None:
        """Drop a delivery locally without any SQS call (it is redelivered after its visibility timeout)."""
        self.qos.reject(delivery_tag, requeue=False)
        self._slot_freed()

    def change_visibility(self, delivery_info: dict[str, Any], seconds: int) -> None:
        """Buffer a visibility change (0 releases the message now) for a ``ChangeMessageVisibilityBatch``."""
        sqs_message = delivery_info["sqs_message"]
        entry = Entry(
            sqs_message["ReceiptHandle"], str(sqs_message.get("MessageId", "?")), self._queue_of(delivery_info), seconds
        )
        self._buffer(self._visibility, delivery_info["sqs_queue"], entry)

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
        if self.hub is None:
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
        if failed_ids:
            failed = [e for i, e in enumerate(batch) if str(i) in failed_ids]
            self._retry(buffer, queue_url, failed, "SQS reported the entries as failed")

    def _on_batch_error(self, buffer: BatchBuffer, queue_url: str, batch: list[Entry], exc: Any) -> None:
        self._retry(buffer, queue_url, batch, f"{type(exc).__name__}: {exc}")

    def _retry(self, buffer: BatchBuffer, queue_url: str, entries: list[Entry], reason: str) -> None:
        for entry in buffer.retry(queue_url, entries):
            what = "delete" if buffer is self._deletes else "visibility change"
            logger.warning(
                "eventbus: %s of message %s on queue %s failed after %d attempts (%s); SQS will redeliver it",
                what,
                entry.message_id,
                entry.queue,
                entry.attempts,
                reason,
            )
        if len(buffer):
            self._arm_timer()

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
            self._log_lost(buffer, batch, f"{type(exc).__name__}: {exc}")
            return
        failed_ids = {str(f.get("Id")) for f in response.get("Failed", [])}
        self._log_lost(buffer, [e for i, e in enumerate(batch) if str(i) in failed_ids], "SQS reported them as failed")

    def _log_lost(self, buffer: BatchBuffer, entries: list[Entry], reason: str) -> None:
        what = "delete" if buffer is self._deletes else "visibility change"
        for entry in entries:
            logger.warning(
                "eventbus: %s of message %s on queue %s failed (%s); SQS will redeliver it",
                what,
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
        """Flush buffered acknowledgements before closing, so a warm shutdown leaves nothing to redeliver."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        try:
            self.flush()
        finally:
            super().close()


class Transport(SQS.Transport):
    """kombu's SQS transport with :class:`Channel`."""

    Channel = Channel
