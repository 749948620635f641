"""Metrics from a real worker on the embedded SNS/SQS, exported by the OpenTelemetry SDK (``metrics_app``): the fate of
each event by outcome and event name, handler durations, end-to-end lag, delete batch sizes; and PublishBatch sizes
of the SNS publisher against the emulator."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from eventbus.adapters.aws import SnsPublisher
from eventbus.adapters.memory import InMemoryPublisher
from eventbus.adapters.otel.metrics import OtelMetrics
from eventbus.core.payload import EventPayload
from eventbus.core.publishing import EventPublisher
from eventbus.core.telemetry import Telemetry
from tests.support import Worker, make_topology, start_worker, wait_until

pytestmark = pytest.mark.integration

#: In a payload and in ``metadata.authorization``: must never reach an exported metric.
SECRET = "s3cret-metrics-marker"


@pytest.fixture(scope="module")
def metrics_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("metrics") / "metrics.json"


@pytest.fixture(scope="module")
def worker(
    sns: Any, sqs: Any, sns_sqs_endpoint: str, metrics_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    topology = make_topology(sns, sqs, f"metrics-{uuid.uuid4().hex[:8]}", max_receive_count=2, visibility=1)
    running = start_worker(
        "tests.integration.metrics_app",
        topology,
        sns_sqs_endpoint,
        tmp_path_factory.mktemp("w"),
        env={"EVENTBUS_TEST_METRICS": str(metrics_file), "EVENTBUS_TELEMETRY": "auto"},
    )
    yield running
    running.stop()


def envelope(event: str, payload: dict[str, Any], age: float = 2.0) -> str:
    published = (datetime.now(UTC) - timedelta(seconds=age)).replace(tzinfo=None).isoformat()
    metadata = {"eventName": event, "publisherName": "itest", "publishDate": published, "authorization": SECRET}
    return json.dumps({"metadata": metadata, "payload": payload})


def exported(path: Path) -> dict[str, list[dict[str, Any]]]:
    """The data points of each eventbus metric in the worker's last export."""
    if not path.exists():
        return {}
    found: dict[str, list[dict[str, Any]]] = {}
    for resource in json.loads(path.read_text())["resource_metrics"]:
        for scope in resource["scope_metrics"]:
            if scope["scope"]["name"] != "eventbus":
                continue
            for metric in scope["metrics"]:
                found.setdefault(metric["name"], []).extend(metric["data"]["data_points"])
    return found


def consumed(points: dict[str, list[dict[str, Any]]]) -> dict[tuple[str, str, str], int]:
    """``messaging.client.consumed.messages`` by (event name, outcome, reason kind)."""
    counts: dict[tuple[str, str, str], int] = {}
    for point in points.get("messaging.client.consumed.messages", []):
        attributes = point["attributes"]
        key = (attributes["eventbus.event.name"], attributes["eventbus.outcome"], attributes.get("eventbus.reason", ""))
        counts[key] = counts.get(key, 0) + point["value"]
    return counts


def test_a_worker_exports_each_events_fate_durations_lag_and_delete_batches(
    sns: Any, sqs: Any, worker: Worker, metrics_file: Path
) -> None:
    topic, queue = worker.topology.topic_arn, worker.topology.queue_name
    for n in range(3):
        sns.publish(TopicArn=topic, Message=envelope("metricsOk", {"n": n, "note": SECRET}, age=3.0))
    sns.publish(TopicArn=topic, Message=envelope("metricsFail", {"note": SECRET}))
    sns.publish(TopicArn=topic, Message=envelope("metricsSlow", {}))
    sns.publish(TopicArn=topic, Message=envelope("metricsTyped", {"count": "not a number", "note": SECRET}))
    sns.publish(TopicArn=topic, Message=envelope(f"metricsNobody{uuid.uuid4().hex[:6]}", {"note": SECRET}))
    sqs.send_message(QueueUrl=worker.topology.queue_url, MessageBody="{not json " + SECRET)

    expected = {
        ("metricsOk", "handled", ""): 3,
        ("metricsSlow", "handled", ""): 1,
        ("metricsTyped", "dead-lettered", "invalid-payload"): 1,
        ("_unsubscribed", "dropped", ""): 1,
        ("_invalid", "dead-lettered", "malformed-json"): 1,
    }

    def settled() -> dict[str, list[dict[str, Any]]] | None:
        points = exported(metrics_file)
        counts = consumed(points)
        done = all(counts.get(key, 0) >= n for key, n in expected.items())
        # an event is counted on its acknowledgement; its delete goes out in a later DeleteMessageBatch, so an export
        # can hold every count and not yet the last delete batch: wait for both
        deleted = sum(
            p["sum"]
            for p in points.get("eventbus.batch.size", [])
            if p["attributes"]["messaging.operation.name"] == "delete"
        )
        failed = counts.get(("metricsFail", "failed", ""), 0)
        return points if done and failed >= 1 and deleted >= 7 else None

    points = wait_until(settled, timeout=40)
    counts = consumed(points)
    for key, n in expected.items():
        assert counts[key] == n, (key, counts)
    # the unsubscribed event's own name (it comes from the message) is never recorded
    assert not [key for key in counts if key[0].startswith("metricsNobody")]
    assert {p["attributes"]["messaging.destination.name"] for p in points["messaging.client.consumed.messages"]} == {
        queue
    }

    durations = {
        (p["attributes"]["eventbus.event.name"], p["attributes"].get("error.type", "")): p
        for p in points["messaging.process.duration"]
    }
    assert durations["metricsOk", ""]["count"] == 3
    assert durations["metricsOk", ""]["sum"] > 0
    assert durations["metricsFail", "_OTHER"]["count"] >= 1
    assert ("metricsTyped", "") not in durations  # dead-lettered before its handler ran

    (lag,) = [p for p in points["eventbus.event.lag"] if p["attributes"]["eventbus.event.name"] == "metricsOk"]
    assert lag["count"] == 3
    assert lag["sum"] >= 3 * 3.0

    deletes = [p for p in points["eventbus.batch.size"] if p["attributes"]["messaging.operation.name"] == "delete"]
    # four handled, one dropped, two dead-letter copies: each deleted from the queue in some DeleteMessageBatch
    assert sum(p["sum"] for p in deletes) >= 7
    assert all(p["max"] <= 10 for p in deletes)

    # the slow handler outlasted its 1 s visibility timeout: the heartbeat extended its message (and SQS confirmed)
    (extensions,) = points["eventbus.visibility.extensions"]
    assert extensions["value"] >= 1
    assert extensions["attributes"]["messaging.destination.name"] == queue

    text = metrics_file.read_text()
    assert SECRET not in text
    assert "not a number" not in text


def test_the_sns_publisher_records_each_publish_batch_size(sns: Any, unique: str) -> None:
    class Metered(OtelMetrics, Telemetry):
        pass

    class Note(EventPayload):
        n: int

    reader = InMemoryMetricReader()
    topic = sns.create_topic(Name=f"metrics-publish-{unique}")["TopicArn"]
    publisher = SnsPublisher(
        sns, topic_arn=topic, telemetry=Metered(meter_provider=MeterProvider(metric_readers=[reader]))
    )
    envelopes = [EventPublisher(InMemoryPublisher(), "svc").envelope(Note(n=n), entity_id=n) for n in range(23)]
    assert len(publisher.publish_batch(envelopes)) == 23
    data = reader.get_metrics_data()
    assert data is not None
    (point,) = [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "eventbus.batch.size"
        for point in metric.data.data_points
    ]
    assert dict(point.attributes) == {"messaging.system": "aws_sns", "messaging.operation.name": "publish"}
    assert (point.count, point.sum, point.max, point.min) == (3, 23, 10, 3)
