"""How a task's end settles its SQS message: never deleted on failure, dead-lettered when the task says so.

A pool process cannot reach the queue: it ends the task, and the worker's main process settles the message.
:class:`Rejection` replaces kombu's ``message.reject_log_error`` for every message the consumer hands to Celery;
:class:`DeadLetter` is what a task raises for a message that can never be handled (a payload that fails its class,
validated where the handler runs so each event is validated once), and
:class:`~eventbus.celery.redaction.EventRequest` hands its reason over before Celery rejects the message.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from celery.exceptions import Reject
from kombu.message import Message

from eventbus.celery.acks import queue_name, sqs_message_id

__all__ = ["DeadLetter", "Rejection"]

logger = logging.getLogger("eventbus.consumer")


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
    :class:`DeadLetter` is dead-lettered with its reason.
    """

    def __init__(self, acknowledger: _Acknowledger, message: Message) -> None:
        self.acknowledger = acknowledger
        self.message = message
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
