"""How a task's end settles its SQS message: never deleted on failure, dead-lettered when the task says so.

A pool process cannot reach the queue: it ends the task, and the worker's main process settles the message.
:class:`Rejection` replaces kombu's ``message.reject_log_error`` for every message the consumer hands to Celery;
:class:`DeadLetter` is what a task raises for a message that can never be handled (a payload that fails its class,
validated where the handler runs so each event is validated once), and
:class:`~eventbus.celery.redaction.EventRequest` hands its reason over before Celery rejects the message.

Metrics: the router gives each :class:`Rejection` its telemetry, so the request of the message's task reports the
event's fate (:func:`report_handled`, :func:`report_failed`) without looking anything up per message.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from celery.exceptions import Reject
from kombu.message import Message

from eventbus.celery.acks import queue_name, sqs_message_id
from eventbus.core.metric_hooks import MetricHooks

__all__ = ["NO_METRICS", "DeadLetter", "Rejection", "reason_kind", "report_failed", "report_handled"]

logger = logging.getLogger("eventbus.consumer")

#: Metric hooks that record nothing (a :class:`Rejection` built without telemetry).
NO_METRICS: Final = MetricHooks()

_KIND = re.compile(r"[a-z][a-z0-9-]{0,39}")


def reason_kind(reason: str) -> str:
    """A dead-letter reason's kind, its first word (``invalid-payload: field 'x' ...`` -> ``invalid-payload``), or
    ``other``: what metrics record, never the reason's text."""
    head = reason.partition(":")[0].strip()
    return head if _KIND.fullmatch(head) else "other"


def _published_at(kwargs: Any) -> float | None:
    """The event's ``publishDate`` (naive means UTC) as a POSIX timestamp, from an event task's kwargs."""
    metadata = kwargs.get("metadata") if isinstance(kwargs, dict) else None
    value = metadata.get("publishDate") if isinstance(metadata, dict) else getattr(metadata, "publish_date", None)
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    except ValueError:
        return None
    if not isinstance(moment, datetime):
        return None
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()


def report_handled(metrics: MetricHooks, event_name: str, queue: str, runtime: float | None, kwargs: Any) -> None:
    """An event's task succeeded: count it handled, record its handler's ``runtime`` and the event's lag (now minus
    its ``publishDate``, when the task's kwargs carry one)."""
    if not metrics.recording:
        return  # nothing would be kept: not even the date is parsed
    metrics.event_settled(event_name=event_name, queue=queue, outcome="handled")
    if runtime is not None:
        metrics.handler_duration(event_name=event_name, queue=queue, seconds=runtime, succeeded=True)
    published = _published_at(kwargs)
    if published is not None:
        metrics.end_to_end_lag(event_name=event_name, queue=queue, seconds=time.time() - published)


def report_failed(
    metrics: MetricHooks, event_name: str, queue: str, runtime: float | None, dead_letter_reason: str | None
) -> None:
    """An event's task failed: dead-lettered (the handler never ran, ``dead_letter_reason`` given) or left for
    redelivery (the handler ran ``runtime`` seconds, when known)."""
    if not metrics.recording:
        return
    if dead_letter_reason is not None:
        kind = reason_kind(dead_letter_reason)
        metrics.event_settled(event_name=event_name, queue=queue, outcome="dead-lettered", reason=kind)
        return
    metrics.event_settled(event_name=event_name, queue=queue, outcome="failed")
    if runtime is not None:
        metrics.handler_duration(event_name=event_name, queue=queue, seconds=runtime, succeeded=False)


class DeadLetter(Reject):  # type: ignore[misc]
    """Raised by a task whose message can never be handled: the message moves to the dead-letter queue.

    ``reason`` is the dead-letter reason (names fields, never values). Pickles as a plain ``Reject`` does, so it
    crosses from a pool process to the main process.
    """

    def __init__(self, reason: str | None = None, requeue: bool = False) -> None:
        super().__init__(reason, requeue=False)


class _Acknowledger(Protocol):
    def release(self, message: Message) -> None: ...

    def leave_for_redelivery(self, message: Message) -> None: ...

    def dead_letter(self, message: Message, reason: str) -> None: ...


class Rejection:
    """``message.reject_log_error`` for a message handed to Celery: a rejected message is never deleted.

    kombu's SQS channel deletes a message rejected without requeue when its queue has no redrive policy, which would
    lose a failed event; here a failed task's message is left for redelivery (SQS's redrive policy dead-letters it
    after ``maxReceiveCount`` receives), a lost worker's is released at once, and one whose task raised
    :class:`DeadLetter` is dead-lettered with its reason. ``metrics`` is where the message's task reports its fate
    (the router's telemetry).
    """

    def __init__(self, acknowledger: _Acknowledger, message: Message, metrics: MetricHooks = NO_METRICS) -> None:
        self.acknowledger = acknowledger
        self.message = message
        self.metrics = metrics
        #: Set by the request when the task raised :class:`DeadLetter`.
        self.dead_letter_reason: str | None = None

    def __call__(self, _logger: Any, _errors: Any, requeue: bool = False) -> None:
        """Settle the rejected message (Celery's call: ``reject_log_error(logger, errors, requeue)``)."""
        if self.dead_letter_reason is not None:
            logger.warning(
                "eventbus: dead-lettering message %s from queue %s: %s",
                sqs_message_id(self.message),
                queue_name(self.message),
                self.dead_letter_reason,
            )
            self.acknowledger.dead_letter(self.message, self.dead_letter_reason)
        elif requeue:
            self.acknowledger.release(self.message)
        else:
            self.acknowledger.leave_for_redelivery(self.message)
