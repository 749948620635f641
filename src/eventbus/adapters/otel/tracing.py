"""Spans following the OpenTelemetry messaging semantic conventions."""

from __future__ import annotations

from eventbus.core.trace_hooks import TraceHooks

__all__ = ["OtelTracing"]


class OtelTracing(TraceHooks):
    """The trace hooks, recorded as OpenTelemetry spans."""
