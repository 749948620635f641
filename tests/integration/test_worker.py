"""A real Celery worker with SQSConsumer on the embedded SNS/SQS: events, task messages, bad input, failures."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.seed import SEED_DO_GOOD, SEED_DO_NICE
from tests.support import Worker, make_topology, start_worker, wait_until

pytestmark = pytest.mark.integration

#: The worker's EVENTBUS_MAX_MESSAGE_BYTES here: under what any SQS queue takes (1 MiB, 256 KiB on a queue left at the
#: former default), so the oversized case reaches the worker.
WORKER_MAX_MESSAGE_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def worker(sns: Any, sqs: Any, sns_sqs_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """conftest's worker, with the lower body size limit."""
    topology = make_topology(sns, sqs, f"itest-{uuid.uuid4().hex[:8]}")
    env = {"EVENTBUS_MAX_MESSAGE_BYTES": str(WORKER_MAX_MESSAGE_BYTES)}
    running = start_worker(
        "tests.integration.worker_app", topology, sns_sqs_endpoint, tmp_path_factory.mktemp("w"), env=env
    )
    yield running
    running.stop()


def envelope(event: str, payload: dict[str, Any], **metadata: Any) -> str:
    """A valid envelope's JSON."""
    meta = {"eventName": event, "publisherName": "itest", "publishDate": "2026-01-01T00:00:00", **metadata}
    return json.dumps({"metadata": meta, "payload": payload})


def dead_letters(sqs: Any, worker: Worker) -> list[dict[str, Any]]:
    """Everything now in the worker queue's DLQ (received and made visible again at once)."""
    response = sqs.receive_message(
        QueueUrl=worker.topology.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=0
    )
    return list(response.get("Messages", []))


def dead_letter_reasons(sqs: Any, worker: Worker, marker: str) -> list[str]:
    """The ``eventbus-reason`` of each dead letter whose body contains ``marker``."""
    found = []
    for message in dead_letters(sqs, worker):
        if marker in message["Body"]:
            attributes = message.get("MessageAttributes", {})
            found.append(attributes.get("eventbus-reason", {}).get("StringValue", "(sqs redrive)"))
    return found


def test_seed_messages_published_through_sns_reach_the_seed_handlers(sns: Any, worker: Worker) -> None:
    sns.publish(TopicArn=worker.topology.topic_arn, Message=SEED_DO_GOOD)
    sns.publish(TopicArn=worker.topology.topic_arn, Message=SEED_DO_NICE)
    good = wait_until(lambda: worker.records("doGood"))
    nice = wait_until(lambda: worker.records("doNice"))
    assert good[0]["payload"] == {"foo": "bar"}
    assert good[0]["entity_id"] == "44f33071-e444-494f-bcff-b5e3594f7628"
    assert nice[0]["entity_id"] == "4123a425-e234-491-bcdf-b5as59cz7611"
    assert nice[0]["payload_type"] == "dict"


def test_name_given_to_subscribe_is_the_event_name(sns: Any, worker: Worker) -> None:
    marker = uuid.uuid4().hex
    sns.publish(TopicArn=worker.topology.topic_arn, Message=envelope("SomeTrickyName", {"marker": marker}))
    rows = wait_until(lambda: [r for r in worker.records("tricky") if r["payload"].get("marker") == marker])
    assert rows[0]["event"] == "SomeTrickyName"
    assert "TASK EXECUTION" in worker.log()


def test_raw_delivery_envelope_and_typed_payload(sqs: Any, worker: Worker) -> None:
    sqs.send_message(
        QueueUrl=worker.topology.queue_url, MessageBody=envelope("orderPlaced", {"order_id": 7, "amount": 1})
    )
    rows = wait_until(lambda: [r for r in worker.records("orderPlaced") if r["order_id"] == 7])
    assert rows[0]["payload_type"] == "OrderPlacedPayload"


def test_celery_task_messages_on_the_same_queue_still_run(worker: Worker) -> None:
    from eventbus.celery import celery_config
    from eventbus.settings import EventBusSettings
    from tests.integration import worker_app

    settings = EventBusSettings(endpoint_url=worker.endpoint, queue_name=worker.topology.queue_name)
    worker_app.app.conf.update(celery_config(settings))  # point this process's app at the worker's queue
    token = uuid.uuid4().hex
    worker_app.plain.delay(token)
    wait_until(lambda: [r for r in worker.records("plain") if r["token"] == token])


def test_unsubscribed_event_is_dropped_with_a_log_line(sqs: Any, sns: Any, worker: Worker) -> None:
    event = f"nobodyListens{uuid.uuid4().hex[:8]}"
    sns.publish(TopicArn=worker.topology.topic_arn, Message=envelope(event, {"x": 1}))
    line = wait_until(lambda: [ln for ln in worker.log().splitlines() if event in ln and "dropped message" in ln])
    assert worker.topology.queue_name in line[0]
    assert dead_letter_reasons(sqs, worker, event) == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"metadata": {"eventName": "doGood", MARKER', "malformed-json"),
        ('{"metadata": {"publisherName": "MARKER"}, "payload": {}}', "invalid-metadata"),
        (
            '{"metadata": {"eventName": "orderPlaced"}, "payload": {"order_id": "MARKER", "amount": 1}}',
            "invalid-payload",
        ),
        ('["MARKER"]', "not-an-envelope"),
        (
            '{"metadata": {"eventName": "doGood"}, "payload": {"blob": "MARKER'
            + "x" * WORKER_MAX_MESSAGE_BYTES
            + '"}}',
            "oversized",
        ),
    ],
    ids=["malformed-json", "missing-event-name", "payload-fails-its-class", "not-an-object", "oversized"],
)
def test_bad_input_goes_to_the_dead_letter_queue_with_its_reason(
    sqs: Any, worker: Worker, body: str, reason: str
) -> None:
    marker = uuid.uuid4().hex
    message_id = sqs.send_message(QueueUrl=worker.topology.queue_url, MessageBody=body.replace("MARKER", marker))[
        "MessageId"
    ]
    reasons = wait_until(lambda: dead_letter_reasons(sqs, worker, marker))
    assert reasons[0].startswith(reason)
    # (an invalid payload is found where its handler runs, so "Task ... received" may come first)
    log_line = wait_until(
        lambda: [ln for ln in worker.log().splitlines() if message_id in ln and "dead-lettering" in ln]
    )
    assert worker.topology.queue_name in log_line[0]
    assert worker.process.poll() is None, "the worker must survive bad input"


def test_failing_handler_is_redelivered_then_dead_lettered(sqs: Any, worker: Worker) -> None:
    marker = uuid.uuid4().hex
    sqs.send_message(QueueUrl=worker.topology.queue_url, MessageBody=envelope("alwaysFails", {"marker": marker}))
    # maxReceiveCount is 2 and the visibility timeout 1 s: two attempts, then SQS moves it.
    wait_until(lambda: len([r for r in worker.records("alwaysFails") if r["marker"] == marker]) >= 2, timeout=30)
    wait_until(lambda: dead_letter_reasons(sqs, worker, marker), timeout=30)
    attempts = [r for r in worker.records("alwaysFails") if r["marker"] == marker]
    assert len(attempts) == 2, "no hot loop: one attempt per receive, maxReceiveCount receives"


def test_secrets_and_personal_data_never_reach_the_logs(sqs: Any, worker: Worker) -> None:
    secret, personal = f"Bearer-{uuid.uuid4().hex}", f"jane-{uuid.uuid4().hex}@example.com"
    marker = uuid.uuid4().hex
    bodies = [
        envelope("leaksNothing", {"marker": marker}, authorization=secret),
        envelope("leaksNothing", {"marker": marker, "email": personal}, containsPersonalData=True),
        # invalid envelopes carrying both, so the dead-letter path is exercised too
        json.dumps({"metadata": {"authorization": secret, "containsPersonalData": True}, "payload": {"e": personal}}),
        envelope("orderPlaced", {"order_id": personal, "amount": secret}, authorization=secret),
    ]
    for body in bodies:
        sqs.send_message(QueueUrl=worker.topology.queue_url, MessageBody=body)
    wait_until(lambda: len([r for r in worker.records("leaksNothing") if r["marker"] == marker]) >= 2)
    wait_until(lambda: len(dead_letter_reasons(sqs, worker, personal)) >= 2)
    log = worker.log()
    assert "failing so the failure path is logged too" in log  # the failure itself is logged
    assert secret not in log
    assert personal not in log


def test_a_handler_publishing_continues_the_trace(sqs: Any, worker: Worker) -> None:
    marker = uuid.uuid4().hex
    trace_id = uuid.uuid4().hex
    parent = f"00-{trace_id}-{'1' * 16}-01"
    sqs.send_message(
        QueueUrl=worker.topology.queue_url,
        MessageBody=envelope("publishFollowUp", {"marker": marker}, traceparent=parent),
    )
    rows = wait_until(lambda: [r for r in worker.records("followUp") if r["source"] == marker])
    assert rows[0]["traceparent"].split("-")[1] == trace_id
    assert rows[0]["traceparent"] != parent
    assert rows[0]["publisher"] == "itest"


def test_unsubscribed_events_can_be_dead_lettered_instead(
    sns: Any, sqs: Any, sns_sqs_endpoint: str, tmp_path: Any
) -> None:
    from tests.support import make_topology, start_worker

    topology = make_topology(sns, sqs, f"unsub-{uuid.uuid4().hex[:8]}")
    strict = start_worker(
        "tests.integration.worker_app",
        topology,
        sns_sqs_endpoint,
        tmp_path,
        env={"EVENTBUS_UNSUBSCRIBED": "dead-letter"},
    )
    try:
        event = f"nobodyListens{uuid.uuid4().hex[:8]}"
        sqs.send_message(QueueUrl=topology.queue_url, MessageBody=envelope(event, {"x": 1}))
        response: dict[str, Any] = {}

        def dead() -> list[dict[str, Any]]:
            response.update(sqs.receive_message(QueueUrl=topology.dlq_url, MessageAttributeNames=["All"]))
            return [m for m in response.get("Messages", []) if event in m["Body"]]

        [message] = wait_until(dead)
        assert "no handler subscribes" in message["MessageAttributes"]["eventbus-reason"]["StringValue"]
    finally:
        strict.stop()
