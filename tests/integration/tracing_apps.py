"""Worker apps of the trace test: service B (``TRACING_ROLE=B``) and service C (``TRACING_ROLE=C``).

B handles ``traceOrdered``: its handler ``.delay()``-s a SQLAlchemy callback task whose success event
``traceShipped`` goes to the topic; C handles ``traceShipped``. Each process exports its finished spans with the
OpenTelemetry SDK (a ``SimpleSpanProcessor``: synchronous, so pool children inherit it whole at fork) to the JSON-lines
file ``EVENTBUS_TEST_SPANS``, one ``write`` per span with O_APPEND. ``TRACING_CELERY_INSTRUMENTATION=1`` also runs
OpenTelemetry's Celery instrumentation, in each pool child (``worker_process_init``), as its docs say to.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from typing import Any

from celery import Celery, shared_task
from celery.signals import worker_process_init
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from eventbus.adapters.otel import OtelTelemetry
from eventbus.celery import configure, subscribe
from eventbus.celery.tasks import SQLAlchemyCeleryTaskWithCallback
from eventbus.container import build_container
from eventbus.core.envelope import Metadata
from eventbus.payload import EventPayload

ROLE = os.environ.get("TRACING_ROLE", "")


def span_record(span: ReadableSpan, service: str) -> dict[str, Any]:
    """One finished span as a JSON-able dict (ids as hex)."""
    context = span.get_span_context()
    assert context is not None
    return {
        "service": service,
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_id": f"{span.parent.span_id:016x}" if span.parent is not None else None,
        "links": [f"{link.context.span_id:016x}" for link in span.links],
        "attributes": dict(span.attributes or {}),
        "events": [{"name": e.name, "attributes": dict(e.attributes or {})} for e in span.events],
        "status": span.status.status_code.name,
        "status_description": span.status.description,
    }


class JsonLinesExporter(SpanExporter):
    """Appends each finished span to a JSON-lines file."""

    def __init__(self, path: str, service: str) -> None:
        self.path = path
        self.service = service

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(span_record(s, self.service), default=str) + "\n" for s in spans)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, lines.encode())
        finally:
            os.close(fd)
        return SpanExportResult.SUCCESS


def tracing_provider(path: str, service: str) -> TracerProvider:
    """An SDK provider writing every span to ``path``."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(path, service)))
    return provider


if ROLE:  # a worker (the test process imports this module for span_record only)
    trace.set_tracer_provider(tracing_provider(os.environ["EVENTBUS_TEST_SPANS"], f"service-{ROLE}"))
    app = Celery("core")
    container = build_container()
    configure(app, container)
    app.conf.CELERYD_CONSUMER = "eventbus.celery.SQSConsumer"
    assert isinstance(container.telemetry(), OtelTelemetry)


@worker_process_init.connect(weak=False)
def _instrument_celery(**_: Any) -> None:
    if os.environ.get("TRACING_CELERY_INSTRUMENTATION") == "1":
        from opentelemetry.instrumentation.celery import CeleryInstrumentor

        CeleryInstrumentor().instrument()


class Base(DeclarativeBase):
    pass


class Parcel(Base):
    __tablename__ = "eventbus_test_parcels"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    email: Mapped[str] = mapped_column(String(200), default="")


class TraceOrderedPayload(EventPayload):
    """Published by service A (the test): carries personal data."""

    contains_personal_data = True
    parcel_id: str
    email: str


class TraceShippedPayload(EventPayload):
    """The callback task's success event: carries personal data too."""

    contains_personal_data = True
    id: str
    email: str


@shared_task(bind=True, base=SQLAlchemyCeleryTaskWithCallback, model=Parcel, payload_cls=TraceShippedPayload)
def ship_parcel(task: SQLAlchemyCeleryTaskWithCallback, parcel_id: str) -> None:
    """Service B's callback task: its success event ``traceShipped`` is published after commit."""
    task.get_instance(id=parcel_id)


if ROLE == "B":

    @subscribe
    def trace_ordered(task: Any, payload: TraceOrderedPayload, metadata: Metadata) -> None:
        """Service B: starts the callback task."""
        ship_parcel.delay(parcel_id=payload.parcel_id)


if ROLE == "C":

    @subscribe
    def trace_shipped(task: Any, payload: TraceShippedPayload, metadata: Metadata) -> None:
        """Service C: handles the callback task's event."""
