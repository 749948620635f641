"""Spans following the OpenTelemetry messaging semantic conventions.

========================  ==========  ===========================  ============================================
step                      kind        name                         parent (links)
========================  ==========  ===========================  ============================================
publish one event         PRODUCER    ``publish {topic}``          the current span (a handler's process span)
create one event          PRODUCER    ``create {topic}``           the current span; outbox writes, batch entries
publish a batch           CLIENT      ``publish {topic}``          the current span (links: each create span)
process one event         CONSUMER    ``process {queue}``          the event's producer span, or the current span
                                                                   when it is in the same trace (Celery's
                                                                   instrumentation's ``run/<task>``)
========================  ==========  ===========================  ============================================

Attributes: ``messaging.system`` (``aws.sns`` for producer spans, ``aws_sqs`` for process spans),
``messaging.destination.name``, ``messaging.operation.type`` (``send``, ``create``, ``process``),
``messaging.operation.name``, ``messaging.message.id``, ``messaging.batch.message_count`` (batches) and
``eventbus.event.name``. Never a payload or a metadata value other than these. A failure sets the status to ERROR,
``error.type`` and an ``exception`` event whose message is kept only for eventbus's own errors (written to be safe);
any other exception is recorded by its type alone, since its text may carry secrets or personal data.

The context travels as W3C trace context in the envelope's ``traceparent`` / ``tracestate``. Without an SDK the spans
are non-recording and carry no context of their own: the envelope then gets the one :mod:`eventbus.core.tracing`
gives (as without OpenTelemetry), so traceparents stay valid and keep continuing the handled event's trace.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from eventbus.core.trace_hooks import OutgoingTrace, ProducerOperation, TraceHooks
from eventbus.core.tracing import TRACESTATE_LIMIT, traceparent_parts
from eventbus.errors import EventBusError

__all__ = ["OtelTracing"]

_PROPAGATOR: Final = TraceContextTextMapPropagator()
#: ``eventbus.event.name``: the event's ``metadata.eventName``.
EVENT_NAME: Final = "eventbus.event.name"
_NOT_AN_SDK: Final = (trace.NoOpTracerProvider, trace.ProxyTracerProvider)
#: Set once OpenTelemetry's global tracer provider is an SDK's.
_global_sdk_set = False


@functools.cache
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("eventbus")
    except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        return ""


def _error_type(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def record_error(span: Span, exc: BaseException) -> None:
    """Status ERROR, ``error.type`` and an ``exception`` event; the text only for eventbus's own errors."""
    if not span.is_recording():
        return
    kind = _error_type(exc)
    safe = str(exc) if isinstance(exc, EventBusError) else ""
    attributes: dict[str, str | bool] = {"exception.type": kind, "exception.escaped": True}
    if safe:
        attributes["exception.message"] = safe
    span.add_event("exception", attributes)
    span.set_attribute("error.type", kind)
    span.set_status(Status(StatusCode.ERROR, safe or kind))


@contextmanager
def _ending(span: Span) -> Iterator[Span]:
    try:
        yield span
    finally:
        span.end()


def _carrier(traceparent: str, tracestate: str) -> dict[str, str]:
    carrier = {"traceparent": traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    return carrier


def _parse_traceparent(traceparent: str, tracestate: str) -> SpanContext | None:
    """The span context of a W3C version-00 ``traceparent`` as eventbus and every W3C producer write it
    (:func:`~eventbus.core.tracing.traceparent_parts`), or None for anything else (OpenTelemetry's own propagator
    reads that)."""
    parts = traceparent_parts(traceparent)
    if parts is None or len(tracestate) > TRACESTATE_LIMIT:
        return None  # a longer tracestate: the propagator's rules (dropped past its own bound, with its warning)
    trace_id, span_id, flags = parts
    return SpanContext(
        int(trace_id, 16),
        int(span_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(int(flags, 16)),
        trace_state=TraceState.from_header([tracestate]) if tracestate else None,
    )


@functools.lru_cache(maxsize=256)
def _remote(traceparent: str, tracestate: str) -> SpanContext:
    """The span context W3C ``traceparent`` / ``tracestate`` name (invalid if they are not valid), read by
    OpenTelemetry's own propagator unless :func:`_parse_traceparent` reads it. Kept for the next few calls: one
    event's task reads its context twice (the task message's headers when it starts, the envelope's in its process
    span)."""
    if not traceparent:
        return trace.INVALID_SPAN_CONTEXT
    parsed = _parse_traceparent(traceparent, tracestate)
    if parsed is not None:
        return parsed  # an all-zero id makes it invalid, as the propagator's would be
    return trace.get_current_span(_PROPAGATOR.extract(_carrier(traceparent, tracestate))).get_span_context()


class _CurrentSpan:
    """A span current for the block, ended after it, an exception recorded as :func:`record_error` does.

    Started and made current by hand rather than through the SDK's ``start_as_current_span`` (two more context
    managers), and a class rather than a generator: every handled event's process span comes through here."""

    __slots__ = ("_span", "_start", "_token")

    def __init__(
        self,
        tracer: trace.Tracer,
        name: str,
        kind: SpanKind,
        attributes: Mapping[str, str | int],
        links: list[Link],
        parent: otel_context.Context | None,
    ) -> None:
        self._start = (tracer, name, kind, attributes, links, parent)

    def __enter__(self) -> None:
        tracer, name, kind, attributes, links, parent = self._start
        self._span = span = tracer.start_span(
            name,
            context=parent,
            kind=kind,
            attributes=attributes,
            links=links,
            record_exception=False,
            set_status_on_exception=False,
        )
        self._token = otel_context.attach(trace.set_span_in_context(span))

    def __exit__(self, _type: object, exc: BaseException | None, _traceback: object) -> None:
        span = self._span
        try:
            if exc is not None:
                record_error(span, exc)
        finally:
            otel_context.detach(self._token)
            span.end()


class OtelTracing(TraceHooks):
    """The trace hooks, recorded as OpenTelemetry spans (tracer ``eventbus``) on the global tracer provider."""

    #: ``messaging.system`` of producer spans (events leave through SNS).
    producer_system: str = "aws.sns"
    #: ``messaging.system`` of process spans (events arrive through SQS).
    consumer_system: str = "aws_sqs"

    #: The provider spans go to; ``None``: the global one (set by the application's SDK set-up, before or after
    #: this object is built: OpenTelemetry's proxy tracer follows it).
    tracer_provider: trace.TracerProvider | None = None
    _tracer: trace.Tracer | None = None

    @property
    def active(self) -> bool:
        """False while no SDK provider is set (OpenTelemetry's no-op or proxy one): every hook is then a no-op."""
        global _global_sdk_set
        provider = self.tracer_provider
        if provider is not None:
            return not isinstance(provider, _NOT_AN_SDK)
        if not _global_sdk_set:  # the global provider, once an SDK's, stays it (set_tracer_provider works once)
            _global_sdk_set = not isinstance(trace.get_tracer_provider(), _NOT_AN_SDK)
        return _global_sdk_set

    @property
    def tracer(self) -> trace.Tracer:
        """The ``eventbus`` tracer of :attr:`tracer_provider`."""
        tracer = self._tracer
        if tracer is None:
            tracer = self._tracer = trace.get_tracer("eventbus", _version(), tracer_provider=self.tracer_provider)
        return tracer

    def producing(
        self, *, event_name: str, destination: str, operation: ProducerOperation
    ) -> AbstractContextManager[OutgoingTrace]:
        """A PRODUCER span: ``publish`` (sent now) or ``create`` (the outbox or a batch sends it)."""
        if not self.active:
            return super().producing(event_name=event_name, destination=destination, operation=operation)
        return self._producing(event_name, destination, operation)

    @contextmanager
    def _producing(self, event_name: str, destination: str, operation: ProducerOperation) -> Iterator[OutgoingTrace]:
        attributes: dict[str, str] = {
            "messaging.system": self.producer_system,
            "messaging.operation.type": "send" if operation == "publish" else "create",
            "messaging.operation.name": operation,
            EVENT_NAME: event_name,
        }
        if destination:
            attributes["messaging.destination.name"] = destination
        name = f"{operation} {destination}" if destination else operation
        parent = trace.get_current_span().get_span_context()
        span = self.tracer.start_span(
            name, kind=SpanKind.PRODUCER, attributes=attributes, record_exception=False, set_status_on_exception=False
        )
        # a create span has no child and must not parent the next event of a batch: current only for ``publish``
        # (where a botocore span of the SNS call becomes its child)
        with (
            trace.use_span(span, end_on_exit=True, record_exception=False, set_status_on_exception=False)
            if (operation == "publish")
            else _ending(span)
        ):
            outgoing = OutgoingTrace()
            context = span.get_span_context()
            # a non-recording span of the API alone repeats its parent's context: not a new span to point to
            if context.is_valid and context.span_id != parent.span_id:
                carrier: dict[str, str] = {}
                _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
                outgoing.traceparent = carrier.get("traceparent", "")
                outgoing.tracestate = carrier.get("tracestate", "")
            try:
                yield outgoing
            except BaseException as exc:
                record_error(span, exc)
                raise
            if outgoing.message_id and span.is_recording():
                span.set_attribute("messaging.message.id", outgoing.message_id)

    def publishing_batch(self, *, destination: str, events: Sequence[OutgoingTrace]) -> AbstractContextManager[None]:
        """A CLIENT ``publish`` span for the batch call, linked to each event's create span."""
        if not self.active:
            return super().publishing_batch(destination=destination, events=events)
        return self._publishing_batch(destination, events)

    @contextmanager
    def _publishing_batch(self, destination: str, events: Sequence[OutgoingTrace]) -> Iterator[None]:
        links = []
        for event in events:
            linked = _remote(event.traceparent, event.tracestate)
            if linked.is_valid:
                links.append(Link(linked))
        attributes: dict[str, str | int] = {
            "messaging.system": self.producer_system,
            "messaging.operation.type": "send",
            "messaging.operation.name": "publish",
            "messaging.batch.message_count": len(events),
        }
        if destination:
            attributes["messaging.destination.name"] = destination
        name = f"publish {destination}" if destination else "publish"
        with _CurrentSpan(self.tracer, name, SpanKind.CLIENT, attributes, links, None):
            yield

    def processing(
        self,
        *,
        event_name: str,
        destination: str,
        message_id: str,
        traceparent: str,
        tracestate: str,
    ) -> AbstractContextManager[None]:
        """A CONSUMER ``process`` span (see the module docstring for its parent)."""
        if not self.active:
            return super().processing(
                event_name=event_name,
                destination=destination,
                message_id=message_id,
                traceparent=traceparent,
                tracestate=tracestate,
            )
        return self._processing(event_name, destination, message_id, traceparent, tracestate)

    def _processing(
        self, event_name: str, destination: str, message_id: str, traceparent: str, tracestate: str
    ) -> _CurrentSpan:
        # the producer's context is parsed once per event (_remote: the task's start read it already)
        producer = _remote(traceparent, tracestate)
        current = trace.get_current_span().get_span_context()
        parent: otel_context.Context | None
        links: list[Link] = []
        if current.is_valid and (not producer.is_valid or current.trace_id == producer.trace_id):
            parent = None  # already in the event's trace (Celery's instrumentation parented on it): its child
        elif producer.is_valid:
            parent = trace.set_span_in_context(trace.NonRecordingSpan(producer), otel_context.Context())
            if current.is_valid:  # another trace is current here: keep a link to it rather than losing it
                links.append(Link(current))
        else:
            parent = None
        attributes = {
            "messaging.system": self.consumer_system,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            EVENT_NAME: event_name,
        }
        if destination:
            attributes["messaging.destination.name"] = destination
        if message_id:
            attributes["messaging.message.id"] = message_id
        name = f"process {destination}" if destination else "process"
        return _CurrentSpan(self.tracer, name, SpanKind.CONSUMER, attributes, links, parent)

    def continuing(self, *, traceparent: str, tracestate: str) -> AbstractContextManager[None]:
        """Make the task message's trace context current, unless a span of that trace is current already."""
        return self._continuing(traceparent, tracestate)

    @contextmanager
    def _continuing(self, traceparent: str, tracestate: str) -> Iterator[None]:
        remote_span = _remote(traceparent, tracestate)
        current = trace.get_current_span().get_span_context()
        if not remote_span.is_valid or (current.is_valid and current.trace_id == remote_span.trace_id):
            yield  # nothing to continue, or Celery's instrumentation did it (its run span is current)
            return
        token = otel_context.attach(trace.set_span_in_context(trace.NonRecordingSpan(remote_span)))
        try:
            yield
        finally:
            otel_context.detach(token)

    def task_headers(self) -> dict[str, str]:
        """The current span's context as ``traceparent`` / ``tracestate``; ``{}`` when none is valid."""
        if not trace.get_current_span().get_span_context().is_valid:
            return {}
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        return carrier
