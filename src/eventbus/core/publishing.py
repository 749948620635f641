"""Turning payloads into envelopes and handing them to the Publisher port."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic import SecretStr

from eventbus.core.envelope import Envelope, Metadata, utc_now
from eventbus.core.payload import EventPayload
from eventbus.core.tracing import child_traceparent, current_event, new_traceparent
from eventbus.ports import Publisher


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
    """

    def __init__(self, publisher: Publisher | Callable[[], Publisher], publisher_name: str) -> None:
        self._resolve: Callable[[], Publisher] = (lambda: publisher) if isinstance(publisher, Publisher) else publisher
        self._publisher_name = publisher_name

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
        """Build the envelope ``publish`` would send, without sending it."""
        parent = current_event.get()
        if parent is not None:
            traceparent, tracestate = child_traceparent(parent.traceparent), parent.tracestate
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
        envelope = self.envelope(
            payload,
            entity_id=entity_id,
            error_code=error_code,
            error_origin=error_origin,
            authorization=authorization,
        )
        return self.port.publish(envelope)

    def publish_batch(self, items: Sequence[EventPayload | Outgoing]) -> list[str]:
        """Publish many payloads (batched by the transport); return ids in order.

        Raises:
            PublishError: some failed; see :meth:`Publisher.publish_batch`.
        """
        envelopes = []
        for item in items:
            out = item if isinstance(item, Outgoing) else Outgoing(item)
            envelopes.append(
                self.envelope(
                    out.payload, entity_id=out.entity_id, error_code=out.error_code, error_origin=out.error_origin
                )
            )
        return self.port.publish_batch(envelopes)
