"""Run the three services of ``tests/integration/test_tracing.py`` once and write the spans of that one trace.

A (this process) publishes ``traceOrdered``; B's Celery worker handles it and ``.delay()``-s the SQLAlchemy callback
task ``ship_parcel``, whose success event ``traceShipped`` C's worker handles. Every span, with its timestamps, goes
to one JSON-lines file (``out/spans.jsonl`` by default). Needs PostgreSQL (``EVENTBUS_TEST_POSTGRES_URL``, default
``postgresql://postgres@127.0.0.1:5432/test``) and the SNS/SQS emulator (embedded; ``--endpoint`` for another one).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("EVENTBUS_SIGNING_KEY", "eventbus-trace-picture-signing-key")

import boto3  # noqa: E402
import psycopg  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from tests.integration.test_tracing import EMAIL, TOKEN, check_trace, read_spans, subscribed_queue  # noqa: E402
from tests.integration.tracing_apps import TraceOrderedPayload  # noqa: E402
from tests.support import Worker, make_topology, start_worker, wait_until  # noqa: E402
from tools.trace_picture.picture_apps import timed_record  # noqa: E402

from eventbus.adapters.aws import SnsPublisher  # noqa: E402
from eventbus.adapters.otel import OtelTelemetry  # noqa: E402
from eventbus.core.publishing import EventPublisher  # noqa: E402

APP = "tools.trace_picture.picture_apps"
REGION = "eu-west-2"
POSTGRES_URL = os.environ.get("EVENTBUS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def clients(endpoint: str) -> tuple[Any, Any]:
    kwargs = {
        "endpoint_url": endpoint,
        "region_name": REGION,
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    }
    return boto3.client("sns", **kwargs), boto3.client("sqs", **kwargs)


def run(endpoint: str, tmp: Path, *, instrument_celery: bool) -> tuple[list[dict[str, Any]], str]:
    """``run_three_services`` of the test, with the timed worker app; every span and the topic's name."""
    sns, sqs = clients(endpoint)
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(
            "create table if not exists eventbus_test_parcels (id varchar(36) primary key, email varchar(200))"
        )
    database_url = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://")
    name = f"orders-{uuid.uuid4().hex[:6]}"
    topology_b = make_topology(sns, sqs, f"{name}-b", max_receive_count=3, visibility=30)
    topology_c = subscribed_queue(sns, sqs, topology_b.topic_arn, f"{name}-c")
    topic = topology_b.topic_arn.rsplit(":", 1)[-1]
    spans_path = tmp / "spans.jsonl"
    common = {"EVENTBUS_TEST_SPANS": str(spans_path), "EVENTBUS_DATABASE_URL": database_url}
    env_b = {**common, "TRACING_ROLE": "B", "TRACING_CELERY_INSTRUMENTATION": "1" if instrument_celery else "0"}
    (tmp / "b").mkdir()
    (tmp / "c").mkdir()
    workers: list[Worker] = []
    exporter = InMemorySpanExporter()
    try:
        workers.append(start_worker(APP, topology_b, endpoint, tmp / "b", env=env_b))
        workers.append(start_worker(APP, topology_c, endpoint, tmp / "c", env={**common, "TRACING_ROLE": "C"}))
        parcel_id = str(uuid.uuid4())
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute("insert into eventbus_test_parcels (id, email) values (%s, %s)", (parcel_id, EMAIL))
        provider = TracerProvider(resource=Resource.create({"service.name": "service-A"}))
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
            print(worker.log()[-4000:], file=sys.stderr)
        raise
    finally:
        for worker in workers:
            worker.stop()
    spans_a = [timed_record(s, "service-A") for s in exporter.get_finished_spans()]
    return spans_a + read_spans(spans_path), topic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "spans.jsonl")
    parser.add_argument("--endpoint", default="", help="an SNS/SQS endpoint (default: start the embedded emulator)")
    parser.add_argument(
        "--no-celery-instrumentation",
        action="store_true",
        help="without OpenTelemetry's Celery instrumentation in B (no run/ and apply_async/ spans)",
    )
    args = parser.parse_args()
    instrument = not args.no_celery_instrumentation
    server = None
    endpoint = args.endpoint
    if not endpoint:
        from eventbus.emulator import EmulatorServer

        server = EmulatorServer(port=0, region=REGION)
        server.start()
        endpoint = server.endpoint_url
    try:
        with tempfile.TemporaryDirectory(prefix="trace-picture-") as tmp:
            spans, topic = run(endpoint, Path(tmp), instrument_celery=instrument)
    finally:
        if server is not None:
            server.stop()
    spans.sort(key=lambda s: s["start_ns"])
    try:
        check_trace(spans, topic, instrument_celery=instrument)
        print("trace checks of tests/integration/test_tracing.py: passed")
    except AssertionError as exc:
        print(f"warning: trace checks of tests/integration/test_tracing.py failed: {exc}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(s, default=str) + "\n" for s in spans))
    print(f"{len(spans)} spans of trace {spans[0]['trace_id']} -> {args.out}")
    for span in spans:
        print(f"  {span['service']:<10} {span['kind']:<9} {span['name']:<40} {span['span_id']} <- {span['parent_id']}")


if __name__ == "__main__":
    main()
