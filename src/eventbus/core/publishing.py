"""Turning payloads into envelopes and handing them to the Publisher port."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass

from pydantic import SecretStr

from eventbus.core.envelope import Envelope, Metadata, utc_now
from eventbus.core.fifo import GROUP_KEY
from eventbus.core.payload import EventPayload
from eventbus.core.trace_hooks import OutgoingTrace, ProducerOperation, TraceHooks
from eventbus.core.tracing import child_traceparent, current_trace, new_traceparent
from eventbus.ports import Publisher

__all__ = ["EventPublisher", "Outgoing"]

_NO_TRACING = TraceHooks()


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A payload with the per-event metadata a batch publish may set."""

    payload: EventPayload
    entity_id: str | None = None
    error_code: str = ""
    error_origin: str = ""


class EventPublisher:
    """Publishes payloads: fills the metadata, then sends through the :class:`Publisher` port.

    ``publishDate`` is now in UTC, ``publisherName`` the configured service name, and when an
    event is being handled in this context its trace continues (same trace id, new span id,
    ``tracestate`` copied).

    ``publisher`` is the port, or a callable returning it on each use (the container passes its provider, so an
    override of ``container.publisher`` reaches an ``EventPublisher`` built before it).

    ``telemetry`` (the trace hooks, or a callable returning them) opens a producer span per event and per batch call;
    a span's context becomes the envelope's ``traceparent`` / ``tracestate``. ``destination`` names the topic in
    those spans (``messaging.destination.name``).
    """

    def __init__(
        self,
        publisher: Publisher | Callable[[], Publisher],
        publisher_name: str,
        *,
        telemetry: TraceHooks | Callable[[], TraceHooks] | None = None,
        destination: str = "",
    ) -> None:
        self._resolve: Callable[[], Publisher] = (lambda: publisher) if isinstance(publisher, Publisher) else publisher
        self._publisher_name = publisher_name
        hooks = _NO_TRACING if telemetry is None else telemetry
        self._hooks: Callable[[], TraceHooks] = (lambda: hooks) if isinstance(hooks, TraceHooks) else hooks
        self.destination = destination

    @property
    def port(self) -> Publisher:
        """The transport this publisher sends through (now: an override in force is what it returns)."""
        return self._resolve()

    def envelope(
        self,
        payload: EventPayload,
        *,
        entity_id: object = None,
        error_code: str = "",
        error_origin: str = "",
        authorization: str = "",
    ) -> Envelope:
        """Build the envelope ``publish`` would send, without sending it (a ``create`` span, when traced)."""
        with self._hooks().producing(
            event_name=payload.get_event_name(), destination=self.destination, operation="create"
        ) as trace:
            return self._envelope(payload, trace, entity_id, error_code, error_origin, authorization)

    def _envelope(
        self,
        payload: EventPayload,
        trace: OutgoingTrace,
        entity_id: object,
        error_code: str,
        error_origin: str,
        authorization: str,
    ) -> Envelope:
        if trace.traceparent:
            traceparent, tracestate = trace.traceparent, trace.tracestate
        else:
            parent = current_trace()
            if parent is not None:
                traceparent, tracestate = child_traceparent(parent[0]), parent[1]
            else:
                traceparent, tracestate = new_traceparent(), ""
        metadata = Metadata(
            contains_personal_data=type(payload).contains_personal_data,
            tracestate=tracestate,
            traceparent=traceparent,
            error_origin=error_origin,
            error_code=error_code,
            authorization=SecretStr(authorization),
            publish_date=utc_now(),
            entity_id="" if entity_id is None else str(entity_id),
            publisher_name=self._publisher_name,
            event_name=payload.get_event_name(),
        )
        group = payload.message_group_id()
        if group is not None:  # FIFO: a group the payload class chose (core/fifo.py); entityId needs no key
            metadata.__pydantic_extra__ = {**(metadata.__pydantic_extra__ or {}), GROUP_KEY: group}
        return Envelope(metadata=metadata, payload=payload.to_wire())

    def publish(
        self,
        payload: EventPayload,
        *,
        entity_id: object = None,
        error_code: str = "",
        error_origin: str = "",
        authorization: str = "",
    ) -> str:
        """Publish one payload; return the transport's message id.

        Raises:
            PublishError: the transport failed.
        """
        port = self.port
        # through the outbox the event is only created here: the relay sends it
        operation: ProducerOperation = "create" if port.transactional else "publish"
        with self._hooks().producing(
            event_name=payload.get_event_name(), destination=self.destination, operation=operation
        ) as trace:
            envelope = self._envelope(payload, trace, entity_id, error_code, error_origin, authorization)
            trace.message_id = port.publish(envelope)
            return trace.message_id

    def publish_batch(self, items: Sequence[EventPayload | Outgoing]) -> list[str]:
        """Publish many payloads (batched by the transport); return ids in order.

        Raises:
            PublishError: some failed; see :meth:`Publisher.publish_batch`.
        """
        port, hooks = self.port, self._hooks()
        with ExitStack() as spans:
            envelopes, traces = [], []
            for item in items:
                out = item if isinstance(item, Outgoing) else Outgoing(item)
                # each event's create span stays open until the batch call returned, to carry its message id
                trace = spans.enter_context(
                    hooks.producing(
                        event_name=out.payload.get_event_name(), destination=self.destination, operation="create"
                    )
                )
                traces.append(trace)
                envelopes.append(
                    self._envelope(out.payload, trace, out.entity_id, out.error_code, out.error_origin, "")
                )
            if port.transactional:
                ids = port.publish_batch(envelopes)
            else:
                with hooks.publishing_batch(destination=self.destination, events=traces):
                    ids = port.publish_batch(envelopes)
            for trace, message_id in zip(traces, ids, strict=False):
                trace.message_id = message_id
            return ids
