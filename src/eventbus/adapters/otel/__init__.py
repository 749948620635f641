"""The OpenTelemetry adapter: spans and metrics through ``opentelemetry-api`` (the ``otel`` extra).

With only the API installed every call is a no-op (OpenTelemetry's own); with an SDK configured by the application
(a TracerProvider / MeterProvider set globally), spans and metrics are exported wherever the SDK sends them.
"""

try:
    import opentelemetry as _opentelemetry  # noqa: F401  (fail here, naming the extra)
except ImportError as exc:
    raise ImportError("eventbus's OpenTelemetry adapter needs opentelemetry-api: pip install 'eventbus[otel]'") from exc

from eventbus.adapters.otel.metrics import OtelMetrics
from eventbus.adapters.otel.tracing import OtelTracing
from eventbus.core.telemetry import Telemetry

__all__ = ["OtelMetrics", "OtelTelemetry", "OtelTracing"]


class OtelTelemetry(OtelTracing, OtelMetrics, Telemetry):
    """Spans (:class:`OtelTracing`) and metrics (:class:`OtelMetrics`) through the OpenTelemetry API."""
