"""Secrets out of a worker's logs and task events.

* :data:`REDACTOR` holds the sensitive values of the events this process is handling (the consumer while it routes
  and dispatches a message, the pool process while the handler runs) and of recent ones (the last 32 messages', at
  most :data:`~eventbus.core.redaction.RECENT_VALUES` values). Redacting a log line costs time proportional to its
  length, however many values are held (see :mod:`eventbus.core.redaction`).
* :func:`install` wraps the logging record factory, so every log record of the process (Celery's, kombu's, the
  handler's own, ``print`` redirected by Celery) has those values replaced by ``***`` in its message and in its
  traceback. It also caps ``botocore``/``boto3`` at INFO: at DEBUG they dump whole SQS responses, message bodies
  included, before anything could know which values in them are secret.
* :class:`EventRequest` (the request class of ``@subscribe`` tasks) redacts the task events Celery sends (the
  exception and traceback of ``task-failed``/``task-retried``, ``kwargs`` of ``task-received``), using the values
  in its own message. It also reports the event's fate to the metrics (in the worker's main process, where the
  outcome is known: :func:`eventbus.celery.outcomes.report_handled` / ``report_failed``).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from typing import Any

from billiard.einfo import ExceptionWithTraceback
from celery.exceptions import Ignore, Terminated
from celery.worker.request import Request

from eventbus.celery.acks import queue_name
from eventbus.celery.outcomes import DeadLetter, Rejection, report_failed, report_handled
from eventbus.core.envelope import Metadata
from eventbus.core.redaction import Redactor, SecretIndex, redact, sensitive_values

#: The process-wide redactor.
REDACTOR = Redactor()

#: Loggers that write message bodies at DEBUG level.
_BODY_DUMPERS = ("botocore", "boto3")

_installed = False
_install_lock = threading.Lock()


def install() -> None:
    """Redact every log record of this process from now on (idempotent; forked children inherit it), and cap
    botocore's body dumps at INFO."""
    global _installed
    with _install_lock:
        if not _installed:
            previous = logging.getLogRecordFactory()

            def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
                record = previous(*args, **kwargs)
                if REDACTOR:
                    _scrub(record)
                return record

            logging.setLogRecordFactory(factory)
            _installed = True
    for name in _BODY_DUMPERS:
        dumper = logging.getLogger(name)
        if dumper.level < logging.INFO:  # set explicitly (NOTSET too): Celery lowers the root level after import
            dumper.setLevel(logging.INFO)


def ensure_installed() -> None:
    """:func:`install` unless this process did already: cheap enough to call for every handler execution."""
    if not _installed:
        install()


def _scrub(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a record whose arguments do not fit its format: logging reports that itself
        return
    clean = REDACTOR.redact(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        clean = REDACTOR.redact(text)
        if clean != text:
            record.exc_text = clean  # formatters use exc_text as it is when set


def secrets_of_kwargs(kwargs: Any) -> set[str]:
    """The sensitive values in an event task's keyword arguments (``metadata`` in wire form, ``payload``)."""
    if not isinstance(kwargs, dict):
        return set()
    metadata = kwargs.get("metadata")
    if isinstance(metadata, Metadata):
        metadata = metadata.to_wire()
    if not isinstance(metadata, dict):
        return set()
    return sensitive_values(metadata, kwargs.get("payload"))


def safe_kwargs_repr(kwargs: Any, limit: int = 1024) -> str:
    """``repr`` of an event task's keyword arguments with the message's secrets replaced (Celery's kwargsrepr)."""
    from celery.utils.saferepr import saferepr

    return redact(str(saferepr(kwargs, maxlen=limit)), secrets_of_kwargs(kwargs))


class EventRequest(Request):  # type: ignore[misc]
    """Celery's request, with the task events it sends redacted."""

    #: The secrets of this request's message, indexed once for all its events (built on the first one).
    _eventbus_secrets: SecretIndex | None = None
    #: Set when the task failed: an acknowledgement from then on does not count the event handled.
    _eventbus_failing: bool = False

    def send_event(self, type: str, **fields: Any) -> None:
        """Send a task event without the message's secrets in any text field."""
        eventer = self._eventer
        if eventer is not None and eventer.enabled and self.task.send_events:
            secrets = self._eventbus_secrets
            if secrets is None:
                secrets = self._eventbus_secrets = SecretIndex(secrets_of_kwargs(self.kwargs))
            if secrets:
                fields = {key: secrets.redact(v) if isinstance(v, str) else v for key, v in fields.items()}
        super().send_event(type, **fields)

    def acknowledge(self) -> None:
        """Celery's acknowledgement; the first one after the task ran (and did not fail) counts the event handled.

        Counted here rather than in ``on_success``: the request class Celery's worker strategy builds for each task
        (``celery.worker.request.create_request_cls``) overrides ``on_success`` without calling this class's, while
        it does acknowledge a task (``acks_late``, as ``@subscribe`` tasks are) only once it succeeded.
        """
        first = not self.acknowledged
        rejection = self._rejection()  # before the acknowledgement: the channel then drops it from the message
        super().acknowledge()
        if first and not self._eventbus_failing and self.time_start and self.task.acks_late and rejection is not None:
            runtime = time.time() - self.time_start
            report_handled(rejection.metrics, self._event_name(), queue_name(self.message), runtime, self.kwargs)

    def on_failure(self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False) -> None:
        """Celery's failure handling; a task that raised :class:`~eventbus.celery.outcomes.DeadLetter` has its
        message dead-lettered with the reason when Celery rejects it. The event is counted failed or dead-lettered
        (not when its task was revoked or ignored its message: nothing failed)."""
        exc = exc_info.exception
        if isinstance(exc, ExceptionWithTraceback):
            exc = exc.exc
        rejection = self._rejection()
        self._eventbus_failing = True  # Celery acknowledges some failures (a retry): not a handled event
        reason: str | None = None
        if isinstance(exc, DeadLetter):
            reason = str(exc.reason or "rejected by its task")
            if rejection is not None:
                rejection.dead_letter_reason = reason
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)
        if rejection is None or isinstance(exc, (Ignore, Terminated)):
            return
        runtime = time.time() - self.time_start if reason is None and self.time_start else None
        report_failed(rejection.metrics, self._event_name(), queue_name(self.message), runtime, reason)

    def _rejection(self) -> Rejection | None:
        """The message's :class:`~eventbus.celery.outcomes.Rejection` (a message the event router handed over)."""
        rejection = getattr(self.message, "reject_log_error", None)  # Celery wraps it in a promise as _on_reject
        return rejection if isinstance(rejection, Rejection) else None

    def _event_name(self) -> str:
        """The event name the task subscribes to: bounded by the registry, unlike a name read from the message."""
        return str(getattr(self.task, "eventbus_event_name", "") or "_unknown")
