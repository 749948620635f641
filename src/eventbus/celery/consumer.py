"""``SQSConsumer``: a Celery worker consumer that also takes raw events off the SQS queue.

Set ``app.conf.worker_consumer = "eventbus.celery.SQSConsumer"`` (or the older
``CELERYD_CONSUMER``). Each message is one of:

* a Celery task message (it has a ``task`` header): handled by Celery as usual;
* an event (an SNS notification, or a raw-delivery envelope) whose ``metadata.eventName`` a
  ``@subscribe`` task handles: rewritten into a Celery task message for that task and run in the
  worker pool like any task (concurrency, time limits, retries and signals all apply), deleted
  only after the task succeeded;
* an event nobody subscribed to: logged at INFO and deleted (a topic fans every event out to
  every queue, so most services ignore most events);
* anything else (malformed JSON, no ``metadata.eventName``, a body over the size limit, a payload
  that fails the handler's payload class): logged at WARNING and moved to the dead-letter queue.

Log lines name the queue, the SQS message id and the reason; never ``metadata.authorization``,
never a payload marked ``containsPersonalData``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from celery.worker.consumer import Consumer
from kombu.message import Message
from vine import promise

from eventbus.celery.acks import SqsAcknowledger, queue_name, sqs_message_id
from eventbus.celery.subscribe import subscriptions_of
from eventbus.core.dispatch import Decision, Fate, decide
from eventbus.core.envelope import MAX_MESSAGE_BYTES
from eventbus.core.registry import SubscriptionRegistry

logger = logging.getLogger("eventbus.consumer")

_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
_REPR_LIMIT = 1024


def _as_task_message(message: Message, decision: Decision) -> None:
    """Turn an event message, in place, into a Celery protocol-2 message for its subscribed task.

    In place, so the delivery tag, acknowledgement and prefetch accounting stay the kombu
    message's own.
    """
    assert decision.envelope is not None
    assert decision.subscription is not None
    envelope = decision.envelope
    task_id = sqs_message_id(message)
    kwargs = {"payload": envelope.payload, "metadata": envelope.metadata.to_wire()}
    safe_kwargs = repr({"metadata": envelope.metadata.to_log(), "payload": envelope.payload_for_log()})
    message.headers = {
        "lang": "py",
        "task": decision.subscription.handler,
        "id": task_id,
        "root_id": task_id,
        "parent_id": None,
        "group": None,
        "shadow": None,
        "eta": None,
        "expires": None,
        "retries": 0,
        "timelimit": [None, None],
        "argsrepr": "()",
        "kwargsrepr": safe_kwargs[:_REPR_LIMIT],
        "origin": f"eventbus:{envelope.metadata.publisher_name}",
        "ignore_result": True,
    }
    message.body = json.dumps([[], kwargs, _EMBED]).encode()
    message.content_type = "application/json"
    message.content_encoding = "utf-8"
    message._decoded_cache = None


class EventRouter:
    """Routes one raw SQS message: to Celery, to a subscribed task, to a drop, or to the DLQ."""

    def __init__(
        self,
        registry: SubscriptionRegistry,
        acknowledger: SqsAcknowledger,
        *,
        max_bytes: int = MAX_MESSAGE_BYTES,
        unsubscribed: Fate = Fate.DROP,
    ) -> None:
        self.registry = registry
        self.acknowledger = acknowledger
        self.max_bytes = max_bytes
        self.unsubscribed = unsubscribed

    def route(self, message: Message, run_task_message: Callable[[Message], Any]) -> Any:
        """Handle one message received by the worker."""
        headers = message.headers
        if isinstance(headers, dict) and "task" in headers:
            return run_task_message(message)
        decision = decide(message.body or b"", self.registry, max_bytes=self.max_bytes, unsubscribed=self.unsubscribed)
        if decision.fate is Fate.DISPATCH:
            _as_task_message(message, decision)
            message.reject_log_error = self.acknowledger.reject_callback(message)  # type: ignore[method-assign]
            return run_task_message(message)
        if decision.fate is Fate.DROP:
            logger.info(
                "eventbus: dropped message %s from queue %s: %s",
                sqs_message_id(message),
                queue_name(message),
                decision.reason,
            )
            self.acknowledger.ack(message)
            return None
        logger.warning(
            "eventbus: dead-lettering message %s from queue %s: %s",
            sqs_message_id(message),
            queue_name(message),
            decision.reason,
        )
        self.acknowledger.dead_letter(message, decision.reason)
        return None


class SQSConsumer(Consumer):  # type: ignore[misc]
    """Celery's consumer, plus raw events from SNS/SQS routed to ``@subscribe`` tasks.

    Reads ``eventbus_max_message_bytes`` and ``eventbus_unsubscribed`` from the app's configuration (set by
    :func:`eventbus.celery.configure` from ``EVENTBUS_MAX_MESSAGE_BYTES`` and ``EVENTBUS_UNSUBSCRIBED``).
    """

    def build_registry(self) -> SubscriptionRegistry:
        """The event-name registry from the app's ``@subscribe`` tasks (raises on duplicates)."""
        return SubscriptionRegistry(subscriptions_of(self.app.tasks.values()))

    def create_task_handler(self, promise: Any = promise) -> Callable[[Message], Any]:
        """Wrap Celery's task handler with the event router."""
        run_task_message = super().create_task_handler(promise)
        registry = self.build_registry()
        logger.info(
            "eventbus: consuming events %s",
            ", ".join(f"{name} -> {sub.handler}" for name, sub in sorted(registry.items())) or "(none subscribed)",
        )
        conf = self.app.conf
        router = EventRouter(
            registry,
            SqsAcknowledger(),
            max_bytes=int(conf.get("eventbus_max_message_bytes") or MAX_MESSAGE_BYTES),
            unsubscribed=Fate(conf.get("eventbus_unsubscribed") or Fate.DROP),
        )

        def on_message(message: Message) -> Any:
            return router.route(message, run_task_message)

        return on_message
