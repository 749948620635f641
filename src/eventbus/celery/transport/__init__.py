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

Layout, one concern per module:

* :mod:`.receiving`: scheduling receives, parking on a full prefetch window, outage backoff, per-message hand-off;
* :mod:`.visibility`: the heartbeat on the event loop (the queue's visibility timeout, extensions and their answers);
* :mod:`.settling`: ack, reject, forget, release: what happens to one delivery;
* :mod:`.acknowledging`: the delete and visibility batch buffers, their timer, asynchronous and synchronous sends,
  retries;
* :mod:`.shutdown`: ``release_held`` and ``close``;
* :mod:`.batching` and :mod:`.heartbeat`: pure scheduling (no kombu, no I/O, clocks injected);
* :mod:`.base`: the state and the seams the concerns share; :mod:`.channel` composes them.

The concerns are mixins of one class, not collaborator objects: kombu calls its hooks (``_get_async``,
``_on_messages_ready``, ``basic_ack``, ``close``...) as methods of the channel, and the concerns share one state (the
QoS, the hub, the buffers, the heartbeat) that collaborators would have to pass back and forth. Every SQS call outside
kombu's asynchronous receive and batch path goes through the channel's one
:class:`~eventbus.adapters.aws.sqs.SqsQueues` (``channel.sqs_queues``), shared with the consumer's acknowledger.
"""

from eventbus.celery.transport.channel import Channel, Transport

__all__ = ["Channel", "Transport"]
