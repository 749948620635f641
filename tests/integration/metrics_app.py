"""The Celery app of ``tests/integration/test_metrics.py``: the OpenTelemetry SDK configured as an application would,
exporting every half second to a JSON file the test reads (``EVENTBUS_TEST_METRICS``), flushed at shutdown.

Only the worker's main process writes the file: that is where eventbus records what happens to each event (the pool
processes inherit the provider, and would otherwise overwrite the file with their own, empty, view).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_shutdown
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)

from eventbus.celery import configure, subscribe
from eventbus.container import build_container
from eventbus.core.envelope import Metadata
from eventbus.payload import EventPayload

_MAIN_PID = os.getpid()


class JsonFileExporter(MetricExporter):
    """Writes the latest collection (cumulative) to one JSON file, replacing it atomically."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        if os.getpid() != _MAIN_PID:
            return MetricExportResult.SUCCESS
        partial = self.path.with_suffix(".partial")
        partial.write_text(metrics_data.to_json())
        partial.replace(self.path)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


provider = MeterProvider(
    metric_readers=[
        PeriodicExportingMetricReader(
            JsonFileExporter(Path(os.environ["EVENTBUS_TEST_METRICS"])), export_interval_millis=500
        )
    ]
)
metrics.set_meter_provider(provider)


@worker_shutdown.connect
def _flush(**_: Any) -> None:
    provider.force_flush()


app = Celery("metrics")
configure(app, build_container())
app.conf.CELERYD_CONSUMER = "eventbus.celery.SQSConsumer"


class TypedPayload(EventPayload):
    """A payload class the dead-lettered event fails (its count is no integer)."""

    count: int


@subscribe(event="metricsOk")
def metrics_ok(task: Any, payload: dict[str, Any], metadata: Metadata) -> None:
    """Handled."""


@subscribe(event="metricsFail")
def metrics_fail(task: Any, payload: dict[str, Any], metadata: Metadata) -> None:
    """Always fails: left for redelivery, then SQS's redrive."""
    raise RuntimeError("this handler always fails")


@subscribe(event="metricsTyped")
def metrics_typed(task: Any, payload: TypedPayload, metadata: Metadata) -> None:
    """Handled when the payload fits its class."""


@subscribe(event="metricsSlow")
def metrics_slow(task: Any, payload: dict[str, Any], metadata: Metadata) -> None:
    """Outlasts the queue's visibility timeout: the heartbeat extends its message."""
    time.sleep(2.5)
