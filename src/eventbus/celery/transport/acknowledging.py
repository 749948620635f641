"""Acknowledging: the two batch buffers (deletes, visibility changes), their timer, and how a batch is sent.

Buffered entries go out as ``DeleteMessageBatch`` / ``ChangeMessageVisibilityBatch`` (10 per call) when
``ack_batch_size`` are waiting for a queue or the oldest has waited ``ack_flush_interval`` seconds, through the event
loop's asynchronous client, never blocking it. Without an event loop, or once warm shutdown began (the loop no longer
polls sockets), batches are sent synchronously through the channel's
:class:`~eventbus.adapters.aws.sqs.SqsQueues`. A call that fails is retried with backoff for up to
``ack_retry_window`` seconds; entries SQS refuses get a few attempts; then each lost entry is logged with its message
id (SQS redelivers those messages). Each ``DeleteMessageBatch`` call's size is recorded (metric
``eventbus.batch.size``, operation ``delete``).

A deleted message's claim-checked body (the consumer put its pointer on the entry) is deleted after it, on a thread
of its own (``DeleteObjects``, never on the event loop); a body whose delete fails stays until the bucket's lifecycle
rule expires it (logged). A message whose delete failed keeps its body: SQS delivers it again.
"""

from __future__ import annotations

import time
from collections import namedtuple
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from vine import promise

from eventbus.celery.transport.base import ChannelBase
from eventbus.celery.transport.batching import SQS_BATCH_LIMIT, BatchBuffer, Entry
from eventbus.celery.transport.logs import REPEAT_LOG_EVERY, logger, reason
from eventbus.core.claim_check import Pointer
from eventbus.core.metric_hooks import MetricHooks
from eventbus.errors import ClaimCheckError

_Queue = namedtuple("_Queue", "id")
_Receipt = namedtuple("_Receipt", "id receipt_handle")


class AcknowledgingMixin(ChannelBase):
    """Batching, sending and retrying deletes and visibility changes."""

    #: Where delete batch sizes are recorded: the process's telemetry (fetched once per channel).
    _ack_metrics: MetricHooks

    def _init_acknowledging(self, options: dict[str, Any]) -> None:
        from eventbus.container import get_container

        self._ack_metrics = get_container().telemetry()
        size = int(options.get("ack_batch_size", SQS_BATCH_LIMIT))
        delay = float(options.get("ack_flush_interval", 0.05))
        self._deletes = BatchBuffer(size, delay)
        self._visibility = BatchBuffer(size, delay)
        self._flush_timer = None
        self._retry_window = float(options.get("ack_retry_window", 60.0))
        self._last_ack_failure_log = 0.0
        self._claim_deleter: ThreadPoolExecutor | None = None

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
            self._ack_metrics.batch_sent(operation="delete", size=len(batch))
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
        if buffer is self._deletes:
            self._delete_claimed(batch, failed_ids)
        if failed_ids:
            failed = [e for i, e in enumerate(batch) if str(i) in failed_ids]
            self._retry(buffer, queue_url, failed, "SQS reported the entries as failed")

    def _delete_claimed(self, batch: list[Entry], failed_ids: set[str]) -> None:
        """Delete the claim-checked bodies of the messages SQS deleted, on the claim-deleter thread."""
        pointers = [e.claim for i, e in enumerate(batch) if e.claim is not None and str(i) not in failed_ids]
        if not pointers:
            return
        if self._claim_deleter is None:
            self._claim_deleter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eventbus-claim-check")
        if self.hub is None or self.draining:
            self._delete_objects(pointers)  # shutting down: the thread may not get to run
        else:
            self._claim_deleter.submit(self._delete_objects, pointers)

    @staticmethod
    def _delete_objects(pointers: Sequence[Pointer]) -> None:
        from eventbus.container import get_container

        try:
            get_container().payload_store().delete(pointers)
        except ClaimCheckError as exc:
            logger.warning("eventbus: %s (the bucket's lifecycle rule expires them)", exc)
        except Exception:
            logger.exception("eventbus: deleting %d claim-checked bodies failed", len(pointers))

    def _on_batch_error(self, buffer: BatchBuffer, queue_url: str, batch: list[Entry], exc: Any) -> None:
        """The whole call failed (SQS unreachable, throttled, 5xx): retry with backoff within the retry window."""
        why = reason(exc)
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
        self._log_lost(buffer, lost, why)
        if not keep:
            return
        if now - self._last_ack_failure_log >= REPEAT_LOG_EVERY:
            self._last_ack_failure_log = now
            logger.warning(
                "eventbus: %s of %d message(s) on queue %s failed (%s); retrying for up to %.0fs",
                self._what(buffer),
                len(keep),
                keep[0].queue,
                why,
                self._retry_window,
            )
        delay = min(0.25 * 2 ** min(max(e.attempts for e in keep), 8), self._receive_backoff.maximum)
        if self.hub is not None:
            self.hub.call_later(delay, self._requeue, buffer, queue_url, keep)

    def _requeue(self, buffer: BatchBuffer, queue_url: str, entries: list[Entry]) -> None:
        for entry in entries:
            self._buffer(buffer, queue_url, entry)

    def _retry(self, buffer: BatchBuffer, queue_url: str, entries: list[Entry], why: str) -> None:
        # SQS refused these entries (stale receipt handle, message gone): a few attempts, then let SQS redeliver
        heartbeats = [e for e in entries if e.visibility]
        for entry in heartbeats:
            logger.debug("eventbus: visibility extension of message %s refused (%s)", entry.message_id, why)
        for entry in buffer.retry(queue_url, [e for e in entries if not e.visibility]):
            logger.warning(
                "eventbus: %s of message %s on queue %s failed after %d attempts (%s); SQS will redeliver it",
                self._what(buffer),
                entry.message_id,
                entry.queue,
                entry.attempts,
                why,
            )
        if len(buffer):
            self._arm_timer()

    def _what(self, buffer: BatchBuffer) -> str:
        return "delete" if buffer is self._deletes else "release"

    def _send_sync(self, buffer: BatchBuffer, queue_url: str, batch: list[Entry]) -> None:
        queue = batch[0].queue
        try:
            entries: list[dict[str, Any]]
            if buffer is self._deletes:
                entries = [{"Id": str(i), "ReceiptHandle": e.receipt_handle} for i, e in enumerate(batch)]
                self._ack_metrics.batch_sent(operation="delete", size=len(entries))
                failed_ids = self.sqs_queues.delete_batch(queue, queue_url, entries)
            else:
                entries = [
                    {"Id": str(i), "ReceiptHandle": e.receipt_handle, "VisibilityTimeout": e.visibility}
                    for i, e in enumerate(batch)
                ]
                failed_ids = self.sqs_queues.change_visibility_batch(queue, queue_url, entries)
        except Exception as exc:
            self._extensions_failed(batch)
            self._log_lost(buffer, [e for e in batch if not e.visibility], reason(exc))
            return
        self._extensions_answered(batch, failed_ids)
        if buffer is self._deletes:
            self._delete_claimed(batch, failed_ids)
        lost = [e for i, e in enumerate(batch) if str(i) in failed_ids and not e.visibility]
        self._log_lost(buffer, lost, "SQS reported them as failed")

    def _log_lost(self, buffer: BatchBuffer, entries: list[Entry], why: str) -> None:
        for entry in entries:
            logger.warning(
                "eventbus: %s of message %s on queue %s failed (%s); SQS will redeliver it",
                self._what(buffer),
                entry.message_id,
                entry.queue,
                why,
            )

    def flush(self) -> None:
        """Send everything buffered now, synchronously (shutdown, connection loss, no event loop)."""
        for buffer in (self._deletes, self._visibility):
            for queue_url, batch in buffer.due(everything=True):
                self._send_sync(buffer, queue_url, batch)
