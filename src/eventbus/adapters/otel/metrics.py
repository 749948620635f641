"""Metrics through the OpenTelemetry metrics API (every metric is described in ``docs/metrics.md``).

Names, units and attributes follow the OpenTelemetry messaging metrics conventions where they have one
(``messaging.client.consumed.messages``, ``messaging.process.duration``); the rest are eventbus's own, under
``eventbus.*``. The instruments come from ``opentelemetry.metrics.get_meter("eventbus", <version>)`` and are created
once per process, on the first measurement (OpenTelemetry's global meter provider hands out proxies until the
application sets its own, so creating them before the SDK is configured loses nothing).

Attributes carry names and counts only: the queue, the event name, the outcome, a dead-letter reason's kind, a
handler's task name. Each distinct attribute set is built once and kept (cheap on the consume path), and the event
names one process records are capped at :data:`MAX_EVENT_NAMES`; later names are recorded as ``_other``.

Cost on the consume path: while no SDK meter provider is set (OpenTelemetry's API alone, the default) every hook
returns at once. With one, nothing goes through the SDK per event (:mod:`eventbus.adapters.otel.kept`): the counters
are sums kept in the process (a dictionary update per event) that observable counters report at each collection,
exported exactly as a synchronous counter's cumulative sums are; the histograms' measurements wait in a list and are
recorded together, 256 at a time and at the start of every collection (the SDK runs the observable callbacks before
it reads any instrument, so an export never misses one). Recorded in a tight loop, a measurement costs a fraction of
what it costs between two events' work. A forked process starts its sums and its pending measurements from zero.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from typing import Final

from opentelemetry import metrics

from eventbus.adapters.otel.kept import observable_counter, pending
from eventbus.core.metric_hooks import MetricHooks

__all__ = ["MAX_EVENT_NAMES", "OtelMetrics"]

#: Distinct event names one process records; more are recorded as ``_other`` (a bound on the series exported).
MAX_EVENT_NAMES: Final = 500
#: ``messaging.system`` of what eventbus consumes from and publishes to.
SQS: Final = "aws_sqs"
SNS: Final = "aws_sns"
#: The conventions' bucket boundaries for ``messaging.process.duration`` (seconds).
DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
#: Lag from publishing (or storing) to handling (or sending): milliseconds to an hour (seconds).
LAG_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: One bucket per size an SQS or SNS batch call can have.
BATCH_BUCKETS: Final = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)

_REASON_KIND = re.compile(r"[a-z][a-z0-9-]{0,39}")
_Attributes = Mapping[str, str]


def _version() -> str:
    try:
        return metadata.version("eventbus")
    except metadata.PackageNotFoundError:
        return ""


def _sdk_set(provider: metrics.MeterProvider) -> bool:
    """False for OpenTelemetry's no-op provider and for its global proxy before an application set a provider."""
    return not isinstance(provider, metrics.NoOpMeterProvider) and type(provider).__name__ != "_ProxyMeterProvider"


#: Set once OpenTelemetry's global meter provider is an SDK's: it cannot be replaced after that (``set_meter_provider``
#: takes effect once per process), so the check is not repeated on every measurement.
_global_sdk_set = False


def _global_recording() -> bool:
    global _global_sdk_set
    if not _global_sdk_set:
        _global_sdk_set = _sdk_set(metrics.get_meter_provider())
    return _global_sdk_set


class _Instruments:
    """The instruments of one meter, what the observable gauge reads, and the attribute sets recorded so far."""

    def __init__(self, meter: metrics.Meter) -> None:
        self.pending = pending()
        # its callback records what is pending (the SDK runs every observable callback before it reads an instrument)
        meter.create_observable_gauge(
            "eventbus.outbox.backlog", [self._observe_backlog], "{event}", "Events waiting in the outbox"
        )
        self.consumed = observable_counter(
            meter, "messaging.client.consumed.messages", "{message}", "Events taken off a queue, by their fate"
        )
        self.process_duration = meter.create_histogram(
            "messaging.process.duration",
            "s",
            "How long a handler ran for one event",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.lag = meter.create_histogram(
            "eventbus.event.lag",
            "s",
            "Handled time minus the event's publishDate",
            explicit_bucket_boundaries_advisory=LAG_BUCKETS,
        )
        self.batch_size = meter.create_histogram(
            "eventbus.batch.size",
            "{message}",
            "Entries per DeleteMessageBatch / PublishBatch call",
            explicit_bucket_boundaries_advisory=BATCH_BUCKETS,
        )
        self.extensions = observable_counter(
            meter,
            "eventbus.visibility.extensions",
            "{message}",
            "Visibility extensions SQS confirmed for held messages",
        )
        self.relayed = observable_counter(meter, "eventbus.outbox.relayed", "{event}", "Events the outbox relay sent")
        self.relay_lag = meter.create_histogram(
            "eventbus.outbox.relay.lag",
            "s",
            "Time from an event being stored in the outbox to being sent",
            explicit_bucket_boundaries_advisory=LAG_BUCKETS,
        )
        self.dedup_hits = observable_counter(
            meter,
            "eventbus.dedup.hits",
            "{event}",
            "Duplicates of handled events acknowledged without running the handler",
        )
        self.backlog_reads: list[Callable[[], int | None]] = []
        #: Each distinct attribute set, built once (a measurement then costs one dict lookup for its attributes).
        self.attributes: dict[tuple[str, ...], _Attributes] = {}
        self.event_names: set[str] = set()

    def _observe_backlog(self, _options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        self.pending.flush()  # a collection begins: the histograms' measurements are recorded before it reads them
        observations = []
        for read in list(self.backlog_reads):
            try:
                value = read()
            except Exception:  # an unreachable store is no reason to break the export
                continue
            if value is not None:
                observations.append(metrics.Observation(value))
        return observations

    def event(self, name: str) -> str:
        """``name``, or ``_other`` once this process has recorded :data:`MAX_EVENT_NAMES` different names."""
        if name in self.event_names:
            return name
        if len(self.event_names) >= MAX_EVENT_NAMES:
            return "_other"
        self.event_names.add(name)
        return name

    def keep(self, key: tuple[str, ...], attributes: dict[str, str]) -> _Attributes:
        """Keep a newly built attribute set under ``key`` (bounded: keys are made of capped names)."""
        self.attributes[key] = attributes
        return attributes


_global: _Instruments | None = None
_global_lock = threading.Lock()


def _global_instruments() -> _Instruments:
    """The process's instruments on OpenTelemetry's global meter provider, created on first use."""
    global _global
    if _global is None:
        with _global_lock:
            if _global is None:
                _global = _Instruments(metrics.get_meter("eventbus", _version()))
    return _global


class OtelMetrics(MetricHooks):
    """The metric hooks, recorded as OpenTelemetry instruments.

    ``meter_provider`` is the provider to record with; by default OpenTelemetry's global one (what an application
    configures with ``metrics.set_meter_provider``), whose instruments every instance in the process shares.
    """

    #: The meter provider given at construction; None: OpenTelemetry's global one.
    meter_provider: metrics.MeterProvider | None = None
    _own: _Instruments | None = None

    def __init__(self, *args: object, meter_provider: metrics.MeterProvider | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.meter_provider = meter_provider

    @property
    def recording(self) -> bool:
        """True once an SDK meter provider is set (this object's, or OpenTelemetry's global one)."""
        provider = self.meter_provider
        return _global_recording() if provider is None else _sdk_set(provider)

    def _recording(self) -> _Instruments | None:
        """The instruments, or None while measurements would go nowhere (no SDK meter provider set yet)."""
        return self._instruments() if self.recording else None

    def _instruments(self) -> _Instruments:
        instruments = self._own
        if instruments is None:
            if self.meter_provider is None:
                instruments = _global_instruments()
            else:
                # once: a second set, built by a thread racing this one, would get no callbacks from the SDK (it keeps
                # the first instrument of a name), and what it counted would never be exported
                with _global_lock:
                    instruments = self._own
                    if instruments is None:
                        meter = metrics.get_meter("eventbus", _version(), meter_provider=self.meter_provider)
                        instruments = _Instruments(meter)
            self._own = instruments
        return instruments

    def event_settled(self, *, event_name: str, queue: str, outcome: str, reason: str = "") -> None:
        """Count one event under ``messaging.client.consumed.messages``, with its fate."""
        try:
            instruments = self._recording()
            if instruments is None:
                return
            event = instruments.event(event_name)
            if reason and not _REASON_KIND.fullmatch(reason):
                reason = "other"  # a kind, never a text
            key = ("settled", event, queue, outcome, reason)
            attributes = instruments.attributes.get(key)
            if attributes is None:
                built = {
                    "messaging.system": SQS,
                    "messaging.operation.name": "receive",
                    "messaging.destination.name": queue,
                    "eventbus.event.name": event,
                    "eventbus.outcome": outcome,
                }
                if reason:
                    built["eventbus.reason"] = reason
                attributes = instruments.keep(key, built)
            instruments.consumed.add(key, attributes, 1)
        except Exception:  # a hook never raises into the runtime
            pass

    def handler_duration(self, *, event_name: str, queue: str, seconds: float, succeeded: bool) -> None:
        """Record one handler run under ``messaging.process.duration`` (``error.type`` ``_OTHER`` if it raised)."""
        try:
            instruments = self._recording()
            if instruments is None:
                return
            event = instruments.event(event_name)
            key = ("duration", event, queue, "" if succeeded else "_OTHER")
            attributes = instruments.attributes.get(key)
            if attributes is None:
                built = {
                    "messaging.system": SQS,
                    "messaging.operation.name": "process",
                    "messaging.destination.name": queue,
                    "eventbus.event.name": event,
                }
                if not succeeded:
                    built["error.type"] = "_OTHER"
                attributes = instruments.keep(key, built)
            instruments.pending.add(instruments.process_duration, max(seconds, 0.0), attributes)
        except Exception:
            pass

    def end_to_end_lag(self, *, event_name: str, queue: str, seconds: float) -> None:
        """Record one handled event's age under ``eventbus.event.lag`` (a clock behind the producer's counts 0)."""
        try:
            instruments = self._recording()
            if instruments is None:
                return
            event = instruments.event(event_name)
            key = ("lag", event, queue)
            attributes = instruments.attributes.get(key)
            if attributes is None:
                built = {"messaging.system": SQS, "messaging.destination.name": queue, "eventbus.event.name": event}
                attributes = instruments.keep(key, built)
            instruments.pending.add(instruments.lag, max(seconds, 0.0), attributes)
        except Exception:
            pass

    def batch_sent(self, *, operation: str, size: int) -> None:
        """Record one batch call's entries under ``eventbus.batch.size``."""
        try:
            instruments = self._recording()
            if instruments is None:
                return
            key = ("batch", operation)
            attributes = instruments.attributes.get(key)
            if attributes is None:
                system = SNS if operation == "publish" else SQS
                attributes = instruments.keep(key, {"messaging.system": system, "messaging.operation.name": operation})
            instruments.pending.add(instruments.batch_size, size, attributes)
        except Exception:
            pass

    def visibility_extended(self, *, queue: str, count: int) -> None:
        """Count confirmed extensions under ``eventbus.visibility.extensions``."""
        try:
            instruments = self._recording()
            if instruments is None:
                return
            key = ("extended", queue)
            attributes = instruments.attributes.get(key)
            if attributes is None:
                attributes = instruments.keep(key, {"messaging.system": SQS, "messaging.destination.name": queue})
            instruments.extensions.add(key, attributes, count)
        except Exception:
            pass

    def outbox_relayed(self, *, count: int, lag_seconds: list[float]) -> None:
        """Count sent events under ``eventbus.outbox.relayed``, each one's lag under ``eventbus.outbox.relay.lag``."""
        try:
            instruments = self._recording()
            if instruments is None:
                return
            if count:
                instruments.relayed.add((), None, count)
            for seconds in lag_seconds:
                instruments.pending.add(instruments.relay_lag, max(seconds, 0.0))
        except Exception:
            pass

    def observe_outbox_backlog(self, read: Callable[[], int | None]) -> None:
        """Have ``eventbus.outbox.backlog`` call ``read`` at each collection (registering one ``read`` twice: once)."""
        try:
            reads = self._instruments().backlog_reads
            if read not in reads:
                reads.append(read)
        except Exception:
            pass

    def dedup_hit(self, *, handler: str) -> None:
        """Count one duplicate under ``eventbus.dedup.hits``, by handler (its task's name)."""
        try:
            instruments = self._recording()
            if instruments is None:
                return
            key = ("dedup", handler)
            attributes = instruments.attributes.get(key)
            if attributes is None:
                attributes = instruments.keep(key, {"eventbus.handler": handler})
            instruments.dedup_hits.add(key, attributes, 1)
        except Exception:
            pass
