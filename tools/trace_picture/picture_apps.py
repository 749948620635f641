"""The worker apps of ``tests/integration/tracing_apps.py`` (services B and C), with timed span records.

That module's exporter writes each span through its module-level ``span_record``, which keeps no timestamps; this
wrapper swaps in :func:`timed_record` (the same record plus start, end, pid and resource) and is otherwise the very
same app: ``celery -A tools.trace_picture.picture_apps worker`` with ``TRACING_ROLE=B`` or ``C``.
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from tests.integration import tracing_apps

_plain_record = tracing_apps.span_record


def timed_record(span: ReadableSpan, service: str) -> dict[str, Any]:
    """``tracing_apps.span_record`` plus ``start_ns``, ``end_ns``, ``pid``, the scope and the resource."""
    record = _plain_record(span, service)
    record["start_ns"] = span.start_time
    record["end_ns"] = span.end_time
    record["pid"] = os.getpid()
    record["scope"] = span.instrumentation_scope.name if span.instrumentation_scope else ""
    record["resource"] = dict(span.resource.attributes) if span.resource else {}
    return record


tracing_apps.span_record = timed_record  # JsonLinesExporter.export looks the name up at each call

app = getattr(tracing_apps, "app", None)
