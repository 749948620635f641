"""Metrics through the OpenTelemetry metrics API."""

from __future__ import annotations

from eventbus.core.metric_hooks import MetricHooks

__all__ = ["OtelMetrics"]


class OtelMetrics(MetricHooks):
    """The metric hooks, recorded as OpenTelemetry instruments."""
