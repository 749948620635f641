"""Trace context in Celery task messages: a task sent while a handler or a task runs continues that trace.

Sending: Celery's ``before_task_publish`` adds ``traceparent`` / ``tracestate`` headers to the task message from the
span current in the sender (the trace hooks' :meth:`~eventbus.core.trace_hooks.TraceHooks.task_headers`), else from
the event being handled or the trace being continued (:func:`eventbus.core.tracing.current_trace`). A message that
has a ``traceparent`` already is left alone: OpenTelemetry's Celery instrumentation put its ``apply_async`` span
there, or it is a retry keeping its event's context, so there is one context per message, never two.

Running: :func:`continuing_task_trace` (the callback task bases wrap their run and their failure handling in it)
makes that context the one the task's events continue. With OpenTelemetry's Celery instrumentation the
``run/<task>`` span, already parented on the header, is current and is kept as it is.

The headers are not signed (:mod:`eventbus.celery.trust` signs the task name, id, ETA, expiry and body) and the trust
boundary passes unknown headers through: a forged ``traceparent`` can at most misplace a span, never run a task.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from contextlib import ExitStack, contextmanager
from typing import Any

from celery.signals import before_task_publish

from eventbus.core.tracing import TRACESTATE_LIMIT, continuing, current_trace, traceparent_parts

__all__ = ["continuing_task_trace", "trace_headers_of"]


def _telemetry() -> Any:
    from eventbus.container import get_container

    return get_container().telemetry()


def add_trace_headers(headers: MutableMapping[str, Any] | None = None, **_: Any) -> None:
    """``before_task_publish``: put the sender's trace context in the task message's headers (see the module)."""
    if headers is None or headers.get("traceparent"):
        return
    context: dict[str, str] = _telemetry().task_headers()
    if not context.get("traceparent"):
        continued = current_trace()
        if continued is None or not continued[0]:
            return
        context = {"traceparent": continued[0], "tracestate": continued[1]}
    headers["traceparent"] = context["traceparent"]
    if context.get("tracestate"):
        headers["tracestate"] = context["tracestate"]


def trace_headers_of(request: Any) -> tuple[str, str]:
    """``(traceparent, tracestate)`` a task request's message carried; ``("", "")`` when absent or malformed."""
    traceparent = getattr(request, "traceparent", None)
    if not isinstance(traceparent, str) or traceparent_parts(traceparent) is None:
        return "", ""
    tracestate = getattr(request, "tracestate", None)
    if not isinstance(tracestate, str) or len(tracestate) > TRACESTATE_LIMIT:
        tracestate = ""
    return traceparent, tracestate


@contextmanager
def continuing_task_trace(request: Any) -> Iterator[None]:
    """Continue, for the block, the trace the running task's message carried (nothing to do without one)."""
    traceparent, tracestate = trace_headers_of(request)
    if not traceparent:
        yield
        return
    with ExitStack() as stack:
        stack.enter_context(_telemetry().continuing(traceparent=traceparent, tracestate=tracestate))
        stack.enter_context(continuing(traceparent, tracestate))
        yield


def install() -> None:
    """Connect :func:`add_trace_headers` (once per process; done when :mod:`eventbus.celery.subscribe` is imported)."""
    before_task_publish.connect(add_trace_headers, weak=False, dispatch_uid="eventbus-trace-headers")
