"""The telemetry seam: what the runtime reports (spans, metrics), independent of any telemetry library.

:class:`Telemetry` does nothing; the OpenTelemetry adapter (:mod:`eventbus.adapters.otel`) overrides its hooks. The
container builds one per process (``container.telemetry()``; ``EVENTBUS_TELEMETRY=off`` keeps the no-op one). Hooks
never raise into the runtime and never receive secrets: they get names, ids and counts, never a payload or
``metadata.authorization``.
"""

from __future__ import annotations

from eventbus.core.metric_hooks import MetricHooks
from eventbus.core.trace_hooks import TraceHooks

__all__ = ["MetricHooks", "Telemetry", "TraceHooks"]


class Telemetry(TraceHooks, MetricHooks):
    """No spans, no metrics: every hook is a no-op (the default without OpenTelemetry)."""
