"""The Celery app the consume benchmark runs: one trivial event handler, one trivial task, and SQS call counting.

Settings come from ``EVENTBUS_*``. ``BENCH_STOCK=all`` puts back Celery's own consumer and kombu's own SQS
transport (``transport``: only the transport); ``BENCH_PREFETCH`` and ``BENCH_POLLING_INTERVAL`` tune the
worker. Each handled message increments the Redis counter ``BENCH_COUNTER``; the worker's main process writes its
SQS request counts to ``BENCH_CALLS`` at shutdown. ``BENCH_LOG`` names a file that gets the consumer's log lines from
INFO up (its "dropped message" lines among them), whatever the worker's ``-l``, and only that file. ``BENCH_OTEL``
(``bare``, ``noop`` or ``memory``) sets up an OpenTelemetry SDK in the worker's processes. ``BENCH_PROFILE`` names a
file that gets a CPU-time cProfile of the worker's main process (from the worker being ready to its shutdown; pstats);
``BENCH_PROFILE_POOL`` a file name prefix for one of each pool process (``<prefix>.<pid>``, from its start to its exit).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from typing import Any

import redis
from celery import Celery
from celery.signals import worker_shutdown

from eventbus.celery import configure, subscribe

app = Celery("bench")
configure(app)
if "BENCH_PREFETCH" in os.environ:
    app.conf.worker_prefetch_multiplier = int(os.environ["BENCH_PREFETCH"])
if "BENCH_POLLING_INTERVAL" in os.environ:
    app.conf.broker_transport_options["polling_interval"] = float(os.environ["BENCH_POLLING_INTERVAL"])
if os.environ.get("BENCH_STOCK") in {"consumer", "all"}:
    app.conf.worker_consumer = "celery.worker.consumer:Consumer"
if os.environ.get("BENCH_STOCK") in {"transport", "all"}:
    app.conf.broker_transport = None  # kombu's own SQS transport, from the sqs:// URL

if "BENCH_LOG" in os.environ:
    _consumer_log = logging.getLogger("eventbus.consumer")
    _file = logging.FileHandler(os.environ["BENCH_LOG"])
    _file.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    _consumer_log.addHandler(_file)
    _consumer_log.setLevel(logging.INFO)
    _consumer_log.propagate = False  # not thousands of drop lines on the console


def _otel(mode: str) -> None:
    """An OpenTelemetry SDK in this process (``BENCH_OTEL``): ``bare`` has no exporter and no reader (spans and
    measurements are made and dropped), ``noop`` exports spans through a batch processor to an exporter that drops
    them, ``memory`` keeps them in an in-memory exporter, ``sampled-10`` is ``noop`` recording one trace in ten (a
    ``ParentBased(TraceIdRatioBased(0.1))`` sampler); metrics go to an in-memory reader in all but ``bare``."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SimpleSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    class Nowhere(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    tracing = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.1))) if mode == "sampled-10" else TracerProvider()
    if mode != "bare":
        processor = SimpleSpanProcessor(InMemorySpanExporter()) if mode == "memory" else BatchSpanProcessor(Nowhere())
        tracing.add_span_processor(processor)
    trace.set_tracer_provider(tracing)
    metrics.set_meter_provider(MeterProvider(metric_readers=[] if mode == "bare" else [InMemoryMetricReader()]))


if os.environ.get("BENCH_OTEL"):
    from celery.signals import worker_process_init

    _otel(os.environ["BENCH_OTEL"])  # the main process (consumer: metrics) ...
    worker_process_init.connect(lambda **_: _otel(os.environ["BENCH_OTEL"]), weak=False)  # ... and each pool child

_redis = redis.Redis.from_url(os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0"))
_counter = os.environ.get("BENCH_COUNTER", "bench")


class _BatchedCount:
    """``BENCH_COUNT=batched``: a handler adds to a sum of its process that a thread adds to Redis every 5 ms (one
    ``INCRBY`` per interval instead of an ``INCR`` per message), so the handler itself costs next to nothing, as the raw
    drain's loop does. The thread is started in the process that counts first (a pool child after the fork)."""

    def __init__(self) -> None:
        self.pending = 0
        self.lock = threading.Lock()
        self.pid = 0

    def __call__(self) -> None:
        with self.lock:
            self.pending += 1
            if self.pid != os.getpid():
                self.pid = os.getpid()
                threading.Thread(target=self._flush, daemon=True).start()

    def _flush(self) -> None:
        while True:
            time.sleep(0.005)
            with self.lock:
                n, self.pending = self.pending, 0
            if n:
                _redis.incrby(_counter, n)


def _incr() -> None:
    _redis.incr(_counter)


_counting = _BatchedCount() if os.environ.get("BENCH_COUNT") == "batched" else _incr
#: CPU time each handler spends before counting (a handler doing work): ``BENCH_HANDLER_CPU_US``, in seconds here.
_work = int(os.environ.get("BENCH_HANDLER_CPU_US") or 0) / 1e6


def count() -> None:
    """What every handler does: spend ``BENCH_HANDLER_CPU_US`` of CPU time (0 by default), then count."""
    if _work:
        until = time.thread_time() + _work  # this thread's: right in a pool of threads too
        while time.thread_time() < until:
            pass
    _counting()


CALLS: Counter[str] = Counter()


def _count_calls() -> None:
    """Count every SQS request: kombu's async client (receives) and botocore (deletes, sends, lookups)."""
    from botocore.client import BaseClient
    from kombu.asynchronous.aws.sqs.connection import AsyncSQSConnection

    make_request = AsyncSQSConnection.make_request

    def counted_make_request(self: Any, operation_name: str, *args: Any, **kwargs: Any) -> Any:
        CALLS[f"async:{operation_name}"] += 1
        return make_request(self, operation_name, *args, **kwargs)

    api_call = BaseClient._make_api_call

    def counted_api_call(self: Any, operation_name: str, params: Any) -> Any:
        if self.meta.service_model.service_name == "sqs":
            CALLS[f"sync:{operation_name}"] += 1
        return api_call(self, operation_name, params)

    AsyncSQSConnection.make_request = counted_make_request  # type: ignore[method-assign]
    BaseClient._make_api_call = counted_api_call  # type: ignore[method-assign]


_count_calls()


if os.environ.get("BENCH_PROFILE"):
    import cProfile

    from celery.signals import worker_ready

    _profile = cProfile.Profile(time.process_time)  # CPU time: what the process spent, not what it waited for
    worker_ready.connect(lambda **_: _profile.enable(), weak=False)
    worker_shutdown.connect(
        lambda **_: (_profile.disable(), _profile.dump_stats(os.environ["BENCH_PROFILE"])), weak=False
    )


if os.environ.get("BENCH_PROFILE_POOL"):
    import cProfile

    from celery.signals import worker_process_init, worker_process_shutdown

    _pool_profile = cProfile.Profile(time.process_time)

    def _dump_pool_profile(**_: Any) -> None:
        _pool_profile.disable()
        _pool_profile.dump_stats(f"{os.environ['BENCH_PROFILE_POOL']}.{os.getpid()}")

    worker_process_init.connect(lambda **_: _pool_profile.enable(), weak=False)
    worker_process_shutdown.connect(_dump_pool_profile, weak=False)


@worker_shutdown.connect
def _write_calls(**_: Any) -> None:
    path = os.environ.get("BENCH_CALLS")
    if path:
        with open(path, "w") as out:
            json.dump(dict(CALLS), out)


if os.environ.get("BENCH_STOCK") not in {"consumer", "all"}:
    # (an app with @subscribe tasks and Celery's own consumer is refused at worker start: the stock runs have none)

    @subscribe
    def bench_event(task: Any, payload: dict[str, Any], metadata: Any) -> None:
        """The event handler: count and return."""
        count()


@app.task  # type: ignore[untyped-decorator]
def bench_task(n: int) -> None:
    """The plain task: count and return."""
    count()
