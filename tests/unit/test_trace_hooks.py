"""The trace hooks: no-op in core, spans per the messaging conventions in the OpenTelemetry adapter (SDK in memory)."""

from __future__ import annotations

import json

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from eventbus import EventPublisher, Metadata
from eventbus.adapters.memory import InMemoryPublisher
from eventbus.adapters.otel import OtelTelemetry
from eventbus.celery.trace_context import add_trace_headers, trace_headers_of
from eventbus.core.telemetry import Telemetry
from eventbus.core.tracing import child_traceparent, continuing, handling, traceparent_parts
from eventbus.errors import PublishError
from eventbus.payload import EventPayload

PARENT = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"


class ThingHappenedPayload(EventPayload):
    contains_personal_data = True
    email: str


class Exploding(InMemoryPublisher):
    def publish(self, envelope: object) -> str:  # type: ignore[override]
        raise ValueError("db password=hunter2 in the text")


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def telemetry(exporter: InMemorySpanExporter) -> OtelTelemetry:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    hooks = OtelTelemetry()
    hooks.tracer_provider = provider
    return hooks


@pytest.fixture
def port() -> InMemoryPublisher:
    return InMemoryPublisher()


def hexes(span: ReadableSpan) -> tuple[str, str]:
    context = span.get_span_context()
    assert context is not None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def test_publish_span_follows_the_conventions_and_its_context_goes_in_the_envelope(
    telemetry: OtelTelemetry, exporter: InMemorySpanExporter, port: InMemoryPublisher
) -> None:
    publisher = EventPublisher(port, "svc", telemetry=telemetry, destination="orders")
    message_id = publisher.publish(ThingHappenedPayload(email="jane@example.com"), authorization="Bearer sekrit")
    [span] = exporter.get_finished_spans()
    assert span.name == "publish orders"
    assert span.kind is SpanKind.PRODUCER
    assert dict(span.attributes or {}) == {
        "messaging.system": "aws.sns",
        "messaging.destination.name": "orders",
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.message.id": message_id,
        "eventbus.event.name": "thingHappened",
    }
    trace_id, span_id = hexes(span)
    [envelope] = port.published
    assert envelope.metadata.traceparent.startswith(f"00-{trace_id}-{span_id}-")


def test_batch_has_sibling_create_spans_linked_from_one_client_span(
    telemetry: OtelTelemetry, exporter: InMemorySpanExporter, port: InMemoryPublisher
) -> None:
    publisher = EventPublisher(port, "svc", telemetry=telemetry, destination="orders")
    with telemetry.tracer.start_as_current_span("request") as outer:
        ids = publisher.publish_batch([ThingHappenedPayload(email="a@x.io"), ThingHappenedPayload(email="b@x.io")])
    spans = exporter.get_finished_spans()
    creates = [s for s in spans if s.name == "create orders"]
    [batch] = [s for s in spans if s.name == "publish orders"]
    outer_id = outer.get_span_context().span_id
    assert [s.parent.span_id for s in creates if s.parent] == [outer_id, outer_id], "siblings, not nested"
    assert all(s.kind is SpanKind.PRODUCER for s in creates)
    assert sorted((s.attributes or {})["messaging.message.id"] for s in creates) == sorted(ids)
    assert batch.kind is SpanKind.CLIENT
    assert (batch.attributes or {})["messaging.batch.message_count"] == 2
    assert {link.context.span_id for link in batch.links} == {s.get_span_context().span_id for s in creates}  # type: ignore[union-attr]
    assert {e.metadata.traceparent.split("-")[2] for e in port.published} == {hexes(s)[1] for s in creates}


def test_process_span_parents_on_the_producer_and_its_publishes_on_it(
    telemetry: OtelTelemetry, exporter: InMemorySpanExporter, port: InMemoryPublisher
) -> None:
    publisher = EventPublisher(port, "svc", telemetry=telemetry, destination="orders")
    metadata = Metadata(event_name="thingHappened", traceparent=PARENT)
    with (
        telemetry.processing(
            event_name="thingHappened", destination="q", message_id="m-1", traceparent=PARENT, tracestate="k=v"
        ),
        handling(metadata),
    ):
        publisher.publish(ThingHappenedPayload(email="jane@example.com"))
    publish, process = exporter.get_finished_spans()
    assert process.name == "process q"
    assert process.kind is SpanKind.CONSUMER
    assert hexes(process)[0] == "a" * 32
    assert process.parent is not None
    assert f"{process.parent.span_id:016x}" == "b" * 16
    assert (process.attributes or {})["messaging.message.id"] == "m-1"
    assert publish.parent is not None
    assert publish.parent.span_id == process.get_span_context().span_id
    assert port.published[0].metadata.tracestate == "k=v"


def test_process_span_is_the_child_of_a_current_span_of_the_same_trace_and_links_another(
    telemetry: OtelTelemetry, exporter: InMemorySpanExporter
) -> None:
    with (
        telemetry.tracer.start_as_current_span("run/task"),  # a new trace: not the event's
        telemetry.processing(event_name="e", destination="q", message_id="", traceparent=PARENT, tracestate=""),
    ):
        pass
    process = next(s for s in exporter.get_finished_spans() if s.name == "process q")
    assert process.parent is not None
    assert f"{process.parent.span_id:016x}" == "b" * 16
    assert len(process.links) == 1

    exporter.clear()
    parent = trace.NonRecordingSpan(trace.get_current_span(_extract(PARENT)).get_span_context())
    with (
        trace.use_span(parent),
        telemetry.tracer.start_as_current_span("run/task") as run,
        telemetry.processing(event_name="e", destination="q", message_id="", traceparent=PARENT, tracestate=""),
    ):
        pass
    process = next(s for s in exporter.get_finished_spans() if s.name == "process q")
    assert process.parent is not None
    assert process.parent.span_id == run.get_span_context().span_id
    assert not process.links


def _extract(traceparent: str) -> object:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({"traceparent": traceparent})


def test_errors_are_recorded_without_foreign_exception_texts(
    telemetry: OtelTelemetry, exporter: InMemorySpanExporter
) -> None:
    publisher = EventPublisher(Exploding(), "svc", telemetry=telemetry, destination="orders")
    with pytest.raises(ValueError, match="password"):
        publisher.publish(ThingHappenedPayload(email="jane@example.com"))
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "ValueError"
    [event] = span.events
    assert event.name == "exception"
    assert "exception.message" not in (event.attributes or {})
    assert "hunter2" not in json.dumps([span.to_json()])

    exporter.clear()
    with (
        pytest.raises(PublishError),
        telemetry.processing(event_name="e", destination="q", message_id="", traceparent="", tracestate=""),
    ):
        raise PublishError("topic refused the event: throttled")
    [span] = exporter.get_finished_spans()
    assert (span.events[0].attributes or {})["exception.message"] == "topic refused the event: throttled"
    assert (span.attributes or {})["error.type"] == "eventbus.errors.PublishError"


def test_no_secret_or_personal_data_in_any_span(
    telemetry: OtelTelemetry, exporter: InMemorySpanExporter, port: InMemoryPublisher
) -> None:
    publisher = EventPublisher(port, "svc", telemetry=telemetry, destination="orders")
    publisher.publish(ThingHappenedPayload(email="jane@example.com"), authorization="Bearer sekrit")
    publisher.publish_batch([ThingHappenedPayload(email="jane@example.com")])
    text = json.dumps([s.to_json() for s in exporter.get_finished_spans()])
    assert "sekrit" not in text
    assert "jane@example.com" not in text


@pytest.mark.parametrize("hooks", [Telemetry(), OtelTelemetry()], ids=["no-op", "api-only"])
def test_without_an_sdk_traceparents_stay_as_core_tracing_makes_them(hooks: Telemetry, port: InMemoryPublisher) -> None:
    if isinstance(hooks, OtelTelemetry):
        hooks.tracer_provider = trace.NoOpTracerProvider()
    publisher = EventPublisher(port, "svc", telemetry=hooks, destination="orders")
    with (
        hooks.processing(event_name="e", destination="q", message_id="", traceparent=PARENT, tracestate="k=v"),
        handling(Metadata(event_name="e", traceparent=PARENT, tracestate="k=v")),
    ):
        publisher.publish(ThingHappenedPayload(email="x@y.z"))
    publisher.publish(ThingHappenedPayload(email="x@y.z"))
    continued, fresh = (e.metadata for e in port.published)
    assert continued.traceparent.startswith("00-" + "a" * 32 + "-")
    assert "b" * 16 not in continued.traceparent
    assert continued.tracestate == "k=v"
    assert len(fresh.traceparent) == 55
    assert "a" * 32 not in fresh.traceparent


def test_a_task_run_continues_the_trace_its_message_carried(port: InMemoryPublisher) -> None:
    publisher = EventPublisher(port, "svc")
    with continuing(PARENT, "k=v"):
        publisher.publish(ThingHappenedPayload(email="x@y.z"))
    assert port.published[0].metadata.traceparent.startswith("00-" + "a" * 32 + "-")
    assert port.published[0].metadata.tracestate == "k=v"


def test_task_headers_are_left_alone_when_set_and_read_only_when_well_formed() -> None:
    headers = {"traceparent": "00-" + "c" * 32 + "-" + "d" * 16 + "-01"}
    with handling(Metadata(event_name="e", traceparent=PARENT)):
        add_trace_headers(headers=headers)
    assert headers == {"traceparent": "00-" + "c" * 32 + "-" + "d" * 16 + "-01"}

    class Request:
        traceparent = "00-not-a-traceparent"
        tracestate = "k=v"

    assert trace_headers_of(Request()) == ("", "")
    Request.traceparent = PARENT + "\n"  # a regular expression's ``$`` would let the newline through
    assert trace_headers_of(Request()) == ("", "")
    Request.traceparent = PARENT
    assert trace_headers_of(Request()) == (PARENT, "k=v")


@pytest.mark.parametrize("parent", [PARENT + "\n", " " + PARENT, PARENT.upper(), "00-not-a-traceparent", ""])
def test_a_malformed_parent_starts_a_new_trace(parent: str) -> None:
    child = child_traceparent(parent)
    assert not child.startswith("00-" + "a" * 32)
    assert traceparent_parts(child) is not None


def test_traceparent_parts() -> None:
    assert traceparent_parts(PARENT) == ("a" * 32, "b" * 16, "01")
    for bad in (PARENT + "\n", PARENT + "-more", "01" + PARENT[2:], PARENT.replace("-", "_"), PARENT[:-1]):
        assert traceparent_parts(bad) is None


TRACEPARENTS = [
    PARENT,
    "00-" + "0af7651916cd43dd8448eb211c80319c" + "-" + "b7ad6b7169203331" + "-00",  # not sampled
    "00-" + "A" * 32 + "-" + "b" * 16 + "-01",  # upper case: invalid
    "00-" + "0" * 32 + "-" + "b" * 16 + "-01",  # all-zero trace id
    "00-" + "a" * 32 + "-" + "0" * 16 + "-01",  # all-zero span id
    "ff-" + "a" * 32 + "-" + "b" * 16 + "-01",  # version ff
    "01-" + "a" * 32 + "-" + "b" * 16 + "-01-more",  # a later version, with more fields
    "00-" + "a" * 32 + "-" + "b" * 16 + "-01-more",  # version 00 with more fields
    "00-" + "a" * 32 + "-" + "b" * 16 + "-0g",
    "00-" + "a" * 31 + "g-" + "b" * 16 + "-01",
    " 00-" + "a" * 32 + "-" + "b" * 16 + "-01",
    "00-" + "a" * 32 + "-" + "b" * 16 + "-01 ",
    "00_" + "a" * 32 + "-" + "b" * 16 + "-01",
    "00-" + "a" * 32 + "_" + "b" * 16 + "-01",
    "00-" + "a" * 32 + "-" + "b" * 16 + "_01",
    "00-" + "a" * 32 + "-" + "b" * 15 + "-01",
    "",
    "garbage",
]
TRACESTATES = ["", "vendor=value", "a=1,b=2", "not a tracestate", "k=" + "v" * 600, "=broken,", "a=1,a=2"]


@pytest.mark.parametrize("traceparent", TRACEPARENTS)
@pytest.mark.parametrize("tracestate", TRACESTATES)
def test_the_fast_traceparent_reading_agrees_with_the_propagator(traceparent: str, tracestate: str) -> None:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from eventbus.adapters.otel.tracing import _remote

    carrier = {"traceparent": traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    expected = trace.get_current_span(TraceContextTextMapPropagator().extract(carrier)).get_span_context()
    _remote.cache_clear()
    got = _remote(traceparent, tracestate)
    if not expected.is_valid:
        assert not got.is_valid
        return
    assert (got.trace_id, got.span_id, got.trace_flags, got.is_remote) == (
        expected.trace_id,
        expected.span_id,
        expected.trace_flags,
        expected.is_remote,
    )
    assert (got.trace_state.to_header() if got.trace_state else "") == (
        expected.trace_state.to_header() if expected.trace_state else ""
    )
