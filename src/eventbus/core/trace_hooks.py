"""Trace hooks of :class:`eventbus.core.telemetry.Telemetry` (no-op here; the OpenTelemetry adapter records spans).

Each hook is a context manager around one step of the runtime. The no-op ones leave the trace context to
:mod:`eventbus.core.tracing` (continue the handled event's trace, or start one); a tracing adapter opens a span per
step and hands the envelope its span's ``traceparent`` / ``tracestate`` through :class:`OutgoingTrace`, so the
consumer's span parents on the producer's. Hooks get names and ids only: never a payload, never
``metadata.authorization``. An exception raised in the block goes through the hook unchanged (the adapter records
it on its span first).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Literal

__all__ = ["OutgoingTrace", "ProducerOperation", "TraceHooks"]

#: ``publish``: the event is sent now (its span is the producer span); ``create``: it is only created (recorded in
#: the outbox, or one entry of a batch: another call sends it).
ProducerOperation = Literal["publish", "create"]


class OutgoingTrace:
    """One outgoing event's trace context, as a hook chose it, and its message id once sent.

    ``traceparent`` empty: the hook has no context of its own (no tracing, or a non-recording span), so the envelope
    gets the one :mod:`eventbus.core.tracing` gives.
    """

    __slots__ = ("message_id", "traceparent", "tracestate")

    def __init__(self, traceparent: str = "", tracestate: str = "") -> None:
        self.traceparent = traceparent
        self.tracestate = tracestate
        #: Set by the publisher once the transport accepted the event.
        self.message_id = ""


class TraceHooks:
    """Where the runtime opens spans: building and sending outgoing events, processing one event."""

    def producing(
        self, *, event_name: str, destination: str, operation: ProducerOperation
    ) -> AbstractContextManager[OutgoingTrace]:
        """Around building (and, for ``publish``, sending) one outgoing event; yields its trace context."""
        return nullcontext(OutgoingTrace())

    def publishing_batch(self, *, destination: str, events: Sequence[OutgoingTrace]) -> AbstractContextManager[None]:
        """Around one batch call sending ``events`` (each built inside its own ``producing(operation="create")``)."""
        return nullcontext()

    def processing(
        self,
        *,
        event_name: str,
        destination: str,
        message_id: str,
        traceparent: str,
        tracestate: str,
    ) -> AbstractContextManager[None]:
        """Around one handler run for one event; ``traceparent`` / ``tracestate`` are the envelope's."""
        return nullcontext()

    def continuing(self, *, traceparent: str, tracestate: str) -> AbstractContextManager[None]:
        """Around a task run that continues the trace its task message carried (a callback task ``.delay()``-ed
        from a handler)."""
        return nullcontext()

    def task_headers(self) -> dict[str, str]:
        """``traceparent`` / ``tracestate`` of the span current here, for a task message being sent; ``{}`` when
        there is none (the caller then falls back to :mod:`eventbus.core.tracing`)."""
        return {}
