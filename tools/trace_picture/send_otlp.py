"""Send the recorded spans (``make_trace.py``'s JSON lines) to an OTLP/HTTP endpoint, unchanged.

Each record becomes an SDK ``ReadableSpan`` again (same trace, span and parent ids, kind, times, attributes, events,
status; resource ``service.name`` = the record's service) and goes out through the OTLP protobuf exporter.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags


def readable(record: dict[str, Any], project: str) -> ReadableSpan:
    trace_id = int(record["trace_id"], 16)

    def context(span_id: str) -> SpanContext:
        return SpanContext(trace_id, int(span_id, 16), is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))

    resource = Resource.create(
        {**record.get("resource", {}), "service.name": record["service"], "openinference.project.name": project}
    )
    return ReadableSpan(
        name=record["name"],
        context=context(record["span_id"]),
        parent=context(record["parent_id"]) if record["parent_id"] else None,
        resource=resource,
        attributes={**record["attributes"], "service.name": record["service"]},
        events=[Event(e["name"], e["attributes"], record["start_ns"]) for e in record["events"]],
        kind=SpanKind[record["kind"]],
        status=Status(StatusCode[record["status"]], record.get("status_description")),
        start_time=record["start_ns"],
        end_time=record["end_ns"],
        instrumentation_scope=InstrumentationScope(record.get("scope") or "eventbus"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spans", type=Path)
    parser.add_argument("--endpoint", default="http://127.0.0.1:6006/v1/traces")
    parser.add_argument("--project", default="eventbus")
    args = parser.parse_args()
    records = [json.loads(line) for line in args.spans.read_text().splitlines() if line]
    result = OTLPSpanExporter(endpoint=args.endpoint).export([readable(r, args.project) for r in records])
    print(f"sent {len(records)} spans to {args.endpoint}: {result.name}")


if __name__ == "__main__":
    main()
