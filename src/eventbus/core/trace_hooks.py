"""Trace hooks of :class:`eventbus.core.telemetry.Telemetry` (no-op here; the OpenTelemetry adapter records spans)."""

from __future__ import annotations

__all__ = ["TraceHooks"]


class TraceHooks:
    """Where the runtime opens spans: publishing and processing events."""
