"""Metric hooks of :class:`eventbus.core.telemetry.Telemetry` (no-op here; the OpenTelemetry adapter records them)."""

from __future__ import annotations

__all__ = ["MetricHooks"]


class MetricHooks:
    """Where the runtime reports counts, durations and sizes."""
