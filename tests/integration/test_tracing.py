"""One trace across three services: A publishes, B handles and its callback task publishes, C handles that.

Service A is this process (an SDK provider with an in-memory exporter); B and C are real workers on the embedded SQS
(``tests/integration/tracing_apps.py``), each exporting its spans to a JSON-lines file. The test reads them all and
checks the trace's shape against the OpenTelemetry messaging conventions, and that no secret reached a span.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from eventbus.adapters.aws import SnsPublisher
from eventbus.adapters.otel import OtelTelemetry
from eventbus.core.publishing import EventPublisher
from tests.integration.tracing_apps import TraceOrderedPayload, span_record
from tests.support import Topology, Worker, make_topology, start_worker, wait_until

pytestmark = pytest.mark.integration

TOKEN = "Bearer planted-token-7f3a9c"
EMAIL = "jane.planted@example.com"
APP = "tests.integration.tracing_apps"


def subscribed_queue(sns: Any, sqs: Any, topic_arn: str, name: str) -> Topology:
    """Another service's queue (with a dead-letter queue) on the same topic."""
    dlq_url = sqs.create_queue(QueueName=f"{name}__dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "30", "RedrivePolicy": redrive})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
    return Topology(topic_arn, name, url, dlq_url)


def read_spans(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def by_id(spans: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {span["span_id"]: span for span in spans}


def ancestors(span: dict[str, Any], index: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    chain = []
    while span["parent_id"] is not None and span["parent_id"] in index:
        span = index[span["parent_id"]]
        chain.append(span)
    return chain


def one(spans: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    found = [s for s in spans if all(s.get(k) == v or s["attributes"].get(k) == v for k, v in match.items())]
    assert len(found) == 1, f"expected one span matching {match}, got {[s['name'] for s in found]}"
    return found[0]


@pytest.fixture
def parcels(postgres_url: str) -> str:
    """The parcels table of the callback task; the database URL."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(
            "create table if not exists eventbus_test_parcels (id varchar(36) primary key, email varchar(200))"
        )
    return postgres_url.replace("postgresql://", "postgresql+psycopg://")


def run_three_services(
    sns: Any, sqs: Any, endpoint: str, database_url: str, tmp: Path, *, instrument_celery: bool
) -> tuple[list[dict[str, Any]], str]:
    """Publish as A, wait for C's process span; return every span (A's, B's and C's) and the topic's name."""
    import psycopg

    name = f"trace-{uuid.uuid4().hex[:8]}"
    topology_b = make_topology(sns, sqs, f"{name}-b", max_receive_count=3, visibility=30)
    topology_c = subscribed_queue(sns, sqs, topology_b.topic_arn, f"{name}-c")
    topic = topology_b.topic_arn.rsplit(":", 1)[-1]
    spans_path = tmp / "spans.jsonl"
    common = {"EVENTBUS_TEST_SPANS": str(spans_path), "EVENTBUS_DATABASE_URL": database_url}
    env_b = {**common, "TRACING_ROLE": "B", "TRACING_CELERY_INSTRUMENTATION": "1" if instrument_celery else "0"}
    (tmp / "b").mkdir()
    (tmp / "c").mkdir()
    workers: list[Worker] = []
    try:
        workers.append(start_worker(APP, topology_b, endpoint, tmp / "b", env=env_b))
        workers.append(start_worker(APP, topology_c, endpoint, tmp / "c", env={**common, "TRACING_ROLE": "C"}))
        parcel_id = str(uuid.uuid4())
        with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as connection:
            connection.execute("insert into eventbus_test_parcels (id, email) values (%s, %s)", (parcel_id, EMAIL))

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        telemetry = OtelTelemetry()
        telemetry.tracer_provider = provider
        publisher = EventPublisher(
            SnsPublisher(sns, topic_arn=topology_b.topic_arn), "service-a", telemetry=telemetry, destination=topic
        )
        publisher.publish(
            TraceOrderedPayload(parcel_id=parcel_id, email=EMAIL), entity_id=parcel_id, authorization=TOKEN
        )

        def c_processed() -> bool:
            return any(
                s["service"] == "service-C" and s["kind"] == "CONSUMER" and s["name"].startswith("process ")
                for s in read_spans(spans_path)
            )

        wait_until(c_processed, timeout=45)
    except BaseException:
        for worker in workers:
            print(worker.log()[-4000:])
        raise
    finally:
        for worker in workers:
            worker.stop()
    spans_a = [span_record(s, "service-A") for s in exporter.get_finished_spans()]
    return spans_a + read_spans(spans_path), topic


def check_trace(spans: list[dict[str, Any]], topic: str, *, instrument_celery: bool) -> None:
    a_publish = one(spans, service="service-A", kind="PRODUCER")
    trace_id = a_publish["trace_id"]
    in_trace = [s for s in spans if s["trace_id"] == trace_id]
    index = by_id(in_trace)

    # ONE trace throughout, no orphan parent: every span of the run is in it, each parent among them
    assert {s["trace_id"] for s in spans} == {trace_id}, [(s["service"], s["name"]) for s in spans]
    assert [s for s in in_trace if s["parent_id"] is None] == [a_publish]
    assert all(s["parent_id"] in index for s in in_trace if s["parent_id"] is not None)

    assert a_publish["name"] == f"publish {topic}"
    assert a_publish["attributes"]["messaging.system"] == "aws.sns"
    assert a_publish["attributes"]["messaging.destination.name"] == topic
    assert a_publish["attributes"]["messaging.operation.type"] == "send"
    assert a_publish["attributes"]["eventbus.event.name"] == "traceOrdered"
    assert a_publish["attributes"]["messaging.message.id"]

    b_process = one(spans, service="service-B", kind="CONSUMER", **{"eventbus.event.name": "traceOrdered"})
    assert b_process["name"].startswith("process ")
    assert b_process["name"].endswith("-b")
    assert b_process["attributes"]["messaging.system"] == "aws_sqs"
    assert b_process["attributes"]["messaging.operation.type"] == "process"
    assert b_process["attributes"]["messaging.message.id"]
    assert b_process["status"] == "UNSET"
    if instrument_celery:
        run = index[b_process["parent_id"]]  # Celery's run/<task> span, parented on the event's producer
        assert run["name"].startswith("run/")
        assert run["kind"] == "CONSUMER"
        assert run["parent_id"] == a_publish["span_id"]
    else:
        assert b_process["parent_id"] == a_publish["span_id"]

    b_create = one(spans, service="service-B", kind="PRODUCER", **{"eventbus.event.name": "traceShipped"})
    assert b_create["name"] == f"create {topic}"
    assert b_create["attributes"]["messaging.operation.type"] == "create"
    assert b_process in ancestors(b_create, index), "the callback's event descends from B's processing"
    if instrument_celery:
        names = [s["name"] for s in ancestors(b_create, index)]
        assert names[0].startswith("run/"), names
        assert names[1].startswith("apply_async/"), names

    c_process = one(spans, service="service-C", kind="CONSUMER")
    assert c_process["attributes"]["eventbus.event.name"] == "traceShipped"
    assert c_process["parent_id"] == b_create["span_id"]

    text = json.dumps(spans)
    assert "planted-token" not in text
    assert EMAIL not in text


def test_one_trace_across_three_services(
    sns: Any, sqs: Any, sns_sqs_endpoint: str, parcels: str, tmp_path: Path
) -> None:
    spans, topic = run_three_services(sns, sqs, sns_sqs_endpoint, parcels, tmp_path, instrument_celery=False)
    check_trace(spans, topic, instrument_celery=False)


def test_one_trace_with_celery_instrumentation_in_b(
    sns: Any, sqs: Any, sns_sqs_endpoint: str, parcels: str, tmp_path: Path
) -> None:
    spans, topic = run_three_services(sns, sqs, sns_sqs_endpoint, parcels, tmp_path, instrument_celery=True)
    check_trace(spans, topic, instrument_celery=True)
