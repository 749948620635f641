"""The metric hooks recorded as OpenTelemetry instruments (the SDK's in-memory reader), and the runtime's reporting
helpers that feed them: what a task's end reports, the outbox relay's counts, lag and backlog."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from eventbus.adapters.memory import InMemoryOutboxStore, InMemoryPublisher
from eventbus.adapters.otel import metrics as otel_metrics
from eventbus.adapters.otel.metrics import OtelMetrics
from eventbus.celery.outcomes import reason_kind, report_failed, report_handled
from eventbus.core.outbox import OutboxPublisher, OutboxRelay
from eventbus.core.payload import EventPayload
from eventbus.core.publishing import EventPublisher
from eventbus.core.telemetry import Telemetry
from eventbus.errors import OutboxError

QUEUE = "orders"


class Metered(OtelMetrics, Telemetry):
    """Telemetry with these metrics and no spans (what the relay and the publisher take)."""


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def hooks(reader: InMemoryMetricReader) -> Metered:
    return Metered(meter_provider=MeterProvider(metric_readers=[reader]))


def points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    """The data points of metric ``name`` collected now (empty if it recorded nothing)."""
    data = reader.get_metrics_data()
    found: list[Any] = []
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "eventbus"
            for metric in scope.metrics:
                if metric.name == name:
                    found.extend(metric.data.data_points)
    return found


def by_attributes(found: list[Any]) -> dict[frozenset[tuple[str, Any]], Any]:
    return {frozenset(point.attributes.items()): point for point in found}


def test_settled_events_are_counted_by_queue_event_outcome_and_reason_kind(
    hooks: Metered, reader: InMemoryMetricReader
) -> None:
    hooks.event_settled(event_name="orderPlaced", queue=QUEUE, outcome="handled")
    hooks.event_settled(event_name="orderPlaced", queue=QUEUE, outcome="handled")
    hooks.event_settled(event_name="orderPlaced", queue=QUEUE, outcome="dead-lettered", reason="invalid-payload")
    hooks.event_settled(event_name="_invalid", queue=QUEUE, outcome="dead-lettered", reason="field 'x' has value 42")
    counts = {
        (p.attributes["eventbus.event.name"], p.attributes["eventbus.outcome"], p.attributes.get("eventbus.reason")): p
        for p in points(reader, "messaging.client.consumed.messages")
    }
    assert {key: point.value for key, point in counts.items()} == {
        ("orderPlaced", "handled", None): 2,
        ("orderPlaced", "dead-lettered", "invalid-payload"): 1,
        # a reason's text never becomes an attribute: only a kind does
        ("_invalid", "dead-lettered", "other"): 1,
    }
    handled = counts["orderPlaced", "handled", None]
    assert handled.attributes["messaging.destination.name"] == QUEUE
    assert handled.attributes["messaging.system"] == "aws_sqs"


def test_handler_durations_are_a_histogram_in_seconds_with_error_type_on_failure(
    hooks: Metered, reader: InMemoryMetricReader
) -> None:
    hooks.handler_duration(event_name="orderPlaced", queue=QUEUE, seconds=0.02, succeeded=True)
    hooks.handler_duration(event_name="orderPlaced", queue=QUEUE, seconds=0.03, succeeded=True)
    hooks.handler_duration(event_name="orderPlaced", queue=QUEUE, seconds=1.5, succeeded=False)
    found = points(reader, "messaging.process.duration")
    ok = [p for p in found if "error.type" not in p.attributes]
    failed = [p for p in found if p.attributes.get("error.type") == "_OTHER"]
    assert len(ok) == 1
    assert ok[0].count == 2
    assert ok[0].sum == pytest.approx(0.05)
    assert len(failed) == 1
    assert failed[0].count == 1
    assert failed[0].sum == pytest.approx(1.5)
    assert ok[0].attributes["messaging.operation.name"] == "process"
    assert list(ok[0].explicit_bounds)[:3] == [0.005, 0.01, 0.025]  # the conventions' buckets


def test_lag_is_recorded_and_a_producer_clock_ahead_counts_zero(hooks: Metered, reader: InMemoryMetricReader) -> None:
    hooks.end_to_end_lag(event_name="orderPlaced", queue=QUEUE, seconds=4.0)
    hooks.end_to_end_lag(event_name="orderPlaced", queue=QUEUE, seconds=-2.0)
    (point,) = points(reader, "eventbus.event.lag")
    assert point.count == 2
    assert point.sum == pytest.approx(4.0)
    assert point.min == 0


def test_batch_sizes_are_recorded_by_operation(hooks: Metered, reader: InMemoryMetricReader) -> None:
    hooks.batch_sent(operation="delete", size=10)
    hooks.batch_sent(operation="delete", size=3)
    hooks.batch_sent(operation="publish", size=7)
    found = {p.attributes["messaging.operation.name"]: p for p in points(reader, "eventbus.batch.size")}
    assert (found["delete"].count, found["delete"].sum, found["delete"].attributes["messaging.system"]) == (
        2,
        13,
        "aws_sqs",
    )
    assert (found["publish"].count, found["publish"].sum, found["publish"].attributes["messaging.system"]) == (
        1,
        7,
        "aws_sns",
    )


def test_visibility_extensions_and_dedup_hits_are_counted(hooks: Metered, reader: InMemoryMetricReader) -> None:
    hooks.visibility_extended(queue=QUEUE, count=3)
    hooks.visibility_extended(queue=QUEUE, count=2)
    hooks.dedup_hit(handler="tasks.charge")
    (extensions,) = points(reader, "eventbus.visibility.extensions")
    assert extensions.value == 5
    assert extensions.attributes["messaging.destination.name"] == QUEUE
    (hits,) = points(reader, "eventbus.dedup.hits")
    assert hits.value == 1
    assert dict(hits.attributes) == {"eventbus.handler": "tasks.charge"}


def test_outbox_relayed_counts_and_lags(hooks: Metered, reader: InMemoryMetricReader) -> None:
    hooks.outbox_relayed(count=2, lag_seconds=[0.5, 1.5])
    (relayed,) = points(reader, "eventbus.outbox.relayed")
    (lag,) = points(reader, "eventbus.outbox.relay.lag")
    assert relayed.value == 2
    assert (lag.count, lag.sum) == (2, pytest.approx(2.0))


def test_backlog_is_read_at_collection_skipping_unknown_and_failing_reads(
    hooks: Metered, reader: InMemoryMetricReader
) -> None:
    waiting = [7]

    def broken() -> int | None:
        raise OutboxError("database down")

    hooks.observe_outbox_backlog(lambda: waiting[0])
    hooks.observe_outbox_backlog(lambda: None)
    hooks.observe_outbox_backlog(broken)
    assert [p.value for p in points(reader, "eventbus.outbox.backlog")] == [7]
    waiting[0] = 2
    assert [p.value for p in points(reader, "eventbus.outbox.backlog")] == [2]


def test_event_names_are_capped_per_process(
    hooks: Metered, reader: InMemoryMetricReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(otel_metrics, "MAX_EVENT_NAMES", 2)
    for name in ("a", "b", "c", "d", "a"):
        hooks.event_settled(event_name=name, queue=QUEUE, outcome="handled")
    counts = {
        p.attributes["eventbus.event.name"]: p.value for p in points(reader, "messaging.client.consumed.messages")
    }
    assert counts == {"a": 2, "b": 1, "_other": 2}


def test_each_attribute_set_is_built_once(hooks: Metered) -> None:
    for _ in range(50):
        hooks.event_settled(event_name="orderPlaced", queue=QUEUE, outcome="handled")
        hooks.handler_duration(event_name="orderPlaced", queue=QUEUE, seconds=0.01, succeeded=True)
        hooks.end_to_end_lag(event_name="orderPlaced", queue=QUEUE, seconds=0.1)
    assert len(hooks._instruments().attributes) == 3


def test_a_hook_never_raises(hooks: Metered, monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def add(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("exporter bug")

    monkeypatch.setattr(hooks._instruments(), "consumed", Broken())
    hooks.event_settled(event_name="orderPlaced", queue=QUEUE, outcome="handled")  # no exception


def test_the_global_instruments_are_created_once_per_process() -> None:
    assert otel_metrics._global_instruments() is otel_metrics._global_instruments()
    assert OtelMetrics()._instruments() is OtelMetrics()._instruments()


# -- what the worker's main process reports when a task ends (eventbus.celery.outcomes) --------------------------


def test_reason_kind_is_the_reasons_first_word_or_other() -> None:
    assert reason_kind("invalid-payload: field 'order_id': Input should be a valid integer") == "invalid-payload"
    assert reason_kind("unauthenticated-task: task 'x' is not signed by this service") == "unauthenticated-task"
    assert reason_kind("rejected by its task") == "other"
    assert reason_kind("") == "other"


def test_a_handled_task_reports_outcome_duration_and_lag_from_publish_date(
    hooks: Metered, reader: InMemoryMetricReader
) -> None:
    published = (datetime.now(UTC) - timedelta(seconds=30)).replace(tzinfo=None).isoformat()
    kwargs = {"metadata": {"eventName": "orderPlaced", "publishDate": published}, "payload": {}}
    report_handled(hooks, "orderPlaced", QUEUE, 0.25, kwargs)
    (consumed,) = points(reader, "messaging.client.consumed.messages")
    assert consumed.attributes["eventbus.outcome"] == "handled"
    (duration,) = points(reader, "messaging.process.duration")
    assert duration.sum == pytest.approx(0.25)
    (lag,) = points(reader, "eventbus.event.lag")
    assert 29 < lag.sum < 40


def test_a_handled_task_without_a_readable_publish_date_records_no_lag(
    hooks: Metered, reader: InMemoryMetricReader
) -> None:
    report_handled(hooks, "orderPlaced", QUEUE, 0.1, {"metadata": {"publishDate": "yesterday"}})
    report_handled(hooks, "orderPlaced", QUEUE, 0.1, {"metadata": None})
    assert points(reader, "eventbus.event.lag") == []
    assert points(reader, "messaging.client.consumed.messages")[0].value == 2


def test_failed_and_dead_lettered_tasks(hooks: Metered, reader: InMemoryMetricReader) -> None:
    report_failed(hooks, "orderPlaced", QUEUE, 0.5, None)
    report_failed(hooks, "orderPlaced", QUEUE, None, "invalid-payload: field 'order_id'")
    found = {
        (p.attributes["eventbus.outcome"], p.attributes.get("eventbus.reason")): p.value
        for p in points(reader, "messaging.client.consumed.messages")
    }
    assert found == {("failed", None): 1, ("dead-lettered", "invalid-payload"): 1}
    (duration,) = points(reader, "messaging.process.duration")  # the dead-lettered one never ran its handler
    assert duration.attributes["error.type"] == "_OTHER"
    assert duration.count == 1


# -- the outbox relay ---------------------------------------------------------------------------------------------


class Note(EventPayload):
    text: str = ""


def test_the_relay_reports_sent_events_their_lag_and_the_backlog(hooks: Metered, reader: InMemoryMetricReader) -> None:
    store = InMemoryOutboxStore()
    transport = InMemoryPublisher()
    relay = OutboxRelay(store, transport, batch_size=2, telemetry=hooks)
    publisher = EventPublisher(OutboxPublisher(store), "svc")
    for n in range(3):
        publisher.publish(Note(text=str(n)), entity_id=n)
    assert [p.value for p in points(reader, "eventbus.outbox.backlog")] == [3]
    assert relay.relay().sent == 2
    (relayed,) = points(reader, "eventbus.outbox.relayed")
    (lag,) = points(reader, "eventbus.outbox.relay.lag")
    assert relayed.value == 2
    assert lag.count == 2
    assert 0 <= lag.sum < 5
    assert [p.value for p in points(reader, "eventbus.outbox.backlog")] == [1]
    relay.drain()
    assert [p.value for p in points(reader, "eventbus.outbox.backlog")] == [0]
    assert points(reader, "eventbus.outbox.relayed")[0].value == 3


def test_the_relay_without_telemetry_records_nothing_and_works() -> None:
    store = InMemoryOutboxStore()
    relay = OutboxRelay(store, InMemoryPublisher())
    EventPublisher(OutboxPublisher(store), "svc").publish(Note(), entity_id=1)
    assert relay.relay().sent == 1
    assert relay.backlog() == 0


# -- what a measurement costs: nothing without an SDK, a dictionary update for a counter, a fork starts at zero ------


def test_without_an_sdk_provider_the_hooks_do_nothing_and_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry import metrics

    hooks = Metered(meter_provider=metrics.NoOpMeterProvider())
    assert hooks.recording is False
    hooks.event_settled(event_name="orderPlaced", queue=QUEUE, outcome="handled")
    assert hooks._own is None  # no instrument was even created

    class Spy(Metered):
        def event_settled(self, **kwargs: Any) -> None:
            raise AssertionError("report_handled must not report to hooks that do not record")

    report_handled(Spy(meter_provider=metrics.NoOpMeterProvider()), "orderPlaced", QUEUE, 0.1, {"metadata": "x"})


def test_a_metric_hooks_subclass_that_overrides_a_hook_records_by_default() -> None:
    from eventbus.core.metric_hooks import MetricHooks

    class Counting(MetricHooks):
        def __init__(self) -> None:
            self.settled: list[str] = []

        def event_settled(self, *, event_name: str, queue: str, outcome: str, reason: str = "") -> None:
            self.settled.append(outcome)

    assert MetricHooks().recording is False
    assert Telemetry().recording is False
    counting = Counting()
    assert counting.recording is True
    report_handled(counting, "orderPlaced", QUEUE, 0.1, {})
    assert counting.settled == ["handled"]


def test_counters_are_sums_kept_in_the_process_and_exported_cumulative(
    hooks: Metered, reader: InMemoryMetricReader
) -> None:
    for _ in range(3):
        hooks.event_settled(event_name="orderPlaced", queue=QUEUE, outcome="handled")
    assert [p.value for p in points(reader, "messaging.client.consumed.messages")] == [3]
    hooks.event_settled(event_name="orderPlaced", queue=QUEUE, outcome="handled")
    assert [p.value for p in points(reader, "messaging.client.consumed.messages")] == [4]  # cumulative, not a delta
    data = reader.get_metrics_data()
    assert data is not None
    (metric,) = [
        m
        for r in data.resource_metrics
        for s in r.scope_metrics
        for m in s.metrics
        if m.name == "messaging.client.consumed.messages"
    ]
    assert metric.data.is_monotonic
    assert metric.unit == "{message}"


def in_a_forked_child(collect: Callable[[], object]) -> str:
    """``repr`` of what ``collect`` returns when run in a forked child of this process."""
    import os

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write, repr(collect()).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as child:
        return child.read()


def test_a_forked_process_does_not_report_its_parents_counts(hooks: Metered, reader: InMemoryMetricReader) -> None:
    hooks.event_settled(event_name="orderPlaced", queue=QUEUE, outcome="handled")

    def child() -> list[float]:  # what would the child's own collection say?
        hooks.dedup_hit(handler="t")
        return [p.value for p in points(reader, "messaging.client.consumed.messages")]

    assert in_a_forked_child(child) == "[]"
    assert [p.value for p in points(reader, "messaging.client.consumed.messages")] == [1]


def test_a_forked_process_does_not_record_its_parents_pending_histogram_measurements(
    hooks: Metered, reader: InMemoryMetricReader
) -> None:
    hooks.handler_duration(event_name="orderPlaced", queue=QUEUE, seconds=0.02, succeeded=True)  # pending, not read
    assert in_a_forked_child(lambda: [p.count for p in points(reader, "messaging.process.duration")]) == "[]"
    assert [p.count for p in points(reader, "messaging.process.duration")] == [1]


def test_histogram_measurements_from_many_threads_are_all_exported_past_the_pending_limit(
    hooks: Metered, reader: InMemoryMetricReader
) -> None:
    import threading

    def record() -> None:
        for _ in range(1000):
            hooks.handler_duration(event_name="orderPlaced", queue=QUEUE, seconds=0.001, succeeded=True)
            hooks.batch_sent(operation="delete", size=10)

    threads = [threading.Thread(target=record) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [p.count for p in points(reader, "messaging.process.duration")] == [8000]
    assert [p.sum for p in points(reader, "eventbus.batch.size")] == [80000]
    # collected again: cumulative, nothing recorded twice
    assert [p.count for p in points(reader, "messaging.process.duration")] == [8000]
