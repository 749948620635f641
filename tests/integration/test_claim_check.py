"""Claim-check end to end, with a real worker (``claim_app``) on the embedded SNS/SQS/S3: events over the threshold are
published through S3 as AWS's extended clients' pointer, fetched by the worker before decoding, their objects deleted
once handled and kept when dead-lettered; pointers to missing objects are dead-lettered with their reason; AWS's own
``amazon-sns-extended-client`` and ``amazon-sqs-extended-client`` read and write the same messages."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventbus.adapters.aws import S3PayloadStore, SnsPublisher
from eventbus.adapters.memory import InMemoryPublisher
from eventbus.core.claim_check import SIZE_ATTRIBUTE, Pointer, parse_pointer
from eventbus.core.publishing import EventPublisher
from tests.conftest import REGION, aws_kwargs, s3_client
from tests.integration.claim_app import LargeDocumentPayload
from tests.support import Worker, make_topology, start_worker, wait_until

pytestmark = pytest.mark.integration

THRESHOLD = 64 * 1024
#: In ``metadata.authorization`` and in a dead-lettered payload: must never reach the worker's log.
SECRET = "s3cret-claim-check-marker"


def text_of(size: int) -> str:
    """``size`` bytes of UTF-8 text, multi-byte characters included (what SQS accepts)."""
    unit = "large event é ü 漢字 "  # 25 bytes
    return (unit * (size // len(unit.encode()) + 1)).encode()[:size].decode("utf-8", "ignore")


@pytest.fixture(scope="module")
def s3(s3_endpoint: str) -> Any:
    return s3_client(s3_endpoint)


@pytest.fixture(scope="module")
def bucket(s3: Any) -> str:
    name = f"claims-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return name


@pytest.fixture(scope="module")
def worker(
    sns: Any, sqs: Any, sns_sqs_endpoint: str, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    topology = make_topology(sns, sqs, f"claims-{uuid.uuid4().hex[:8]}", max_receive_count=2, visibility=5)
    running = start_worker(
        "tests.integration.claim_app",
        topology,
        sns_sqs_endpoint,
        tmp_path_factory.mktemp("claims"),
        env={"EVENTBUS_S3_ENDPOINT_URL": s3_endpoint},
    )
    yield running
    running.stop()


class RecordingStore(S3PayloadStore):
    """The S3 store, remembering where it put each body."""

    def __init__(self, client: Any, bucket: str) -> None:
        super().__init__(client, bucket)
        self.stored: list[Pointer] = []

    def put(self, body: bytes) -> Pointer:
        self.stored.append(super().put(body))
        return self.stored[-1]


def publisher(sns: Any, s3: Any, bucket: str, topic_arn: str) -> SnsPublisher:
    return SnsPublisher(
        sns, topic_arn=topic_arn, payload_store=S3PayloadStore(s3, bucket), claim_check_threshold=THRESHOLD
    )


def letters_naming(sqs: Any, dlq_url: str, pointer: Pointer) -> list[dict[str, Any]]:
    """The dead-letter queue's messages (one receive) whose body holds ``pointer``'s key, with their attributes."""
    got = sqs.receive_message(
        QueueUrl=dlq_url, MessageAttributeNames=["All"], WaitTimeSeconds=1, MaxNumberOfMessages=10
    )
    return [m for m in got.get("Messages", []) if pointer.key in m["Body"]]


def keys(s3: Any, bucket: str) -> set[str]:
    return {item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


def test_large_events_go_through_s3_are_handled_whole_and_their_objects_deleted(
    sns: Any, s3: Any, bucket: str, worker: Worker
) -> None:
    sender = publisher(sns, s3, bucket, worker.topology.topic_arn)
    events = EventPublisher(InMemoryPublisher(), "claims-test")
    texts = {f"big-{n}": text_of(300 * 1024 + n) for n in range(3)}  # over SQS's default 256 KiB, and the threshold
    texts["small"] = text_of(1024)
    envelopes = [
        events.envelope(LargeDocumentPayload(marker=marker, text=text), entity_id=marker, authorization=SECRET)
        for marker, text in texts.items()
    ]
    sender.publish(envelopes[0])
    sender.publish_batch(envelopes[1:])
    assert len(keys(s3, bucket)) == 3  # only the three large ones were stored

    handled = wait_until(lambda: (rows := worker.records("largeDocument")) and len(rows) >= 4 and rows, timeout=30)
    by_marker = {row["marker"]: row for row in handled}
    assert set(by_marker) == set(texts)
    for marker, text in texts.items():
        assert by_marker[marker]["size"] == len(text.encode())
        assert by_marker[marker]["digest"] == hashlib.sha256(text.encode()).hexdigest()
        assert by_marker[marker]["entity_id"] == marker
    # each object is deleted after its message was deleted
    wait_until(lambda: not keys(s3, bucket), timeout=15)
    assert SECRET not in worker.log()


def test_a_pointer_to_a_missing_object_is_dead_lettered_with_its_reason_once(
    sns: Any, sqs: Any, s3: Any, bucket: str, worker: Worker
) -> None:
    pointer = Pointer(bucket, f"gone-{uuid.uuid4()}")
    sns.publish(TopicArn=worker.topology.topic_arn, Message=pointer.to_json())

    (letter,) = wait_until(lambda: letters_naming(sqs, worker.topology.dlq_url, pointer), timeout=30)
    reason = letter["MessageAttributes"]["eventbus-reason"]["StringValue"]
    assert reason.startswith("claim-check-missing:"), reason
    assert pointer.key in reason  # the object is named, so an operator can find it
    assert f"claim-check-missing: s3://{bucket}/{pointer.key}" in worker.log()


def test_a_claim_checked_event_that_is_dead_lettered_keeps_its_object_and_its_secrets(
    sns: Any, sqs: Any, s3: Any, bucket: str, worker: Worker
) -> None:
    marker = uuid.uuid4().hex
    # a payload its handler's class refuses (no "text"), marked as personal data, with a secret in it
    body = json.dumps(
        {
            "metadata": {
                "eventName": "largeDocument",
                "publisherName": "claims-test",
                "authorization": SECRET,
                "containsPersonalData": True,
            },
            "payload": {"marker": marker, "note": SECRET, "padding": text_of(200 * 1024)},
        }
    )
    pointer = S3PayloadStore(s3, bucket).put(body.encode())
    sns.publish(
        TopicArn=worker.topology.topic_arn,
        Message=pointer.to_json(),
        MessageAttributes={SIZE_ATTRIBUTE: {"DataType": "Number", "StringValue": str(len(body.encode()))}},
    )

    (letter,) = wait_until(lambda: letters_naming(sqs, worker.topology.dlq_url, pointer), timeout=30)
    reason = letter["MessageAttributes"]["eventbus-reason"]["StringValue"]
    assert reason.startswith("invalid-payload"), reason
    assert SECRET not in reason
    # the copy is the pointer, unchanged (a redrive reads the same object), and the object is still there
    assert parse_pointer(json.loads(letter["Body"])["Message"]) == pointer
    assert pointer.key in keys(s3, bucket)
    assert SECRET not in worker.log()


def test_aws_extended_clients_and_eventbus_read_each_others_large_messages(
    sns: Any, sqs: Any, s3: Any, s3_endpoint: str, sns_sqs_endpoint: str, bucket: str, worker: Worker, unique: str
) -> None:
    from sns_extended_client import SNSExtendedClientSession
    from sqs_extended_client import SQSExtendedClientSession

    # AWS's SNS extended client publishes a large event: the eventbus worker handles it
    session = SNSExtendedClientSession(region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test")
    extended_sns = session.client("sns", endpoint_url=sns_sqs_endpoint)
    extended_sns.s3_client = s3
    extended_sns.large_payload_support = bucket
    extended_sns.message_size_threshold = THRESHOLD
    marker = f"from-aws-{unique}"
    text = text_of(280 * 1024)
    envelope = {
        "metadata": {"eventName": "plainNote", "publisherName": "java-ish"},
        "payload": {"marker": marker, "text": text},
    }
    extended_sns.publish(TopicArn=worker.topology.topic_arn, Message=json.dumps(envelope))
    (row,) = wait_until(lambda: [r for r in worker.records("plainNote") if r["marker"] == marker], timeout=30)
    assert row["size"] == len(text.encode())

    # eventbus publishes a large event: AWS's SQS extended client, on a raw-delivery subscription, reads it whole
    queue_url = sqs.create_queue(QueueName=f"claims-aws-reader-{unique}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    topic_arn = sns.create_topic(Name=f"claims-aws-{unique}")["TopicArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    document = LargeDocumentPayload(marker=marker, text=text_of(290 * 1024))
    sent = EventPublisher(InMemoryPublisher(), "claims-test").envelope(document, entity_id=1)
    store = RecordingStore(s3, bucket)
    SnsPublisher(sns, topic_arn=topic_arn, payload_store=store, claim_check_threshold=THRESHOLD).publish(sent)
    (pointer,) = store.stored

    reader_session = SQSExtendedClientSession(
        region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test"
    )
    extended_sqs = reader_session.client("sqs", endpoint_url=sns_sqs_endpoint)
    extended_sqs.s3_client = s3
    extended_sqs.large_payload_support = bucket
    extended_sqs.delete_payload_from_s3 = True

    def received() -> list[dict[str, Any]]:
        got = extended_sqs.receive_message(
            QueueUrl=queue_url, MessageAttributeNames=["All"], WaitTimeSeconds=1, MaxNumberOfMessages=1
        )
        return list(got.get("Messages", []))

    (message,) = wait_until(received, timeout=20)
    assert json.loads(message["Body"]) == json.loads(sent.to_json())
    # and deleting through it (delete_payload_from_s3 on) deletes the stored body too: its receipt handle carries our
    # pointer
    assert pointer.key in keys(s3, bucket)
    extended_sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    assert pointer.key not in keys(s3, bucket)


def test_a_claim_check_the_store_cannot_take_fails_the_publish_and_sends_nothing(
    sns: Any, sqs: Any, unique: str, tmp_path: Path
) -> None:
    import boto3
    from botocore.config import Config

    from eventbus.errors import PublishError

    unreachable = boto3.client(
        "s3",
        config=Config(connect_timeout=0.5, read_timeout=0.5, retries={"total_max_attempts": 1}),
        **aws_kwargs("http://127.0.0.1:9"),
    )
    topology = make_topology(sns, sqs, f"claims-unstored-{unique}")
    sender = SnsPublisher(
        sns,
        topic_arn=topology.topic_arn,
        payload_store=S3PayloadStore(unreachable, "nowhere"),
        claim_check_threshold=THRESHOLD,
    )
    events = EventPublisher(InMemoryPublisher(), "claims-test")
    large = events.envelope(LargeDocumentPayload(marker="large", text=text_of(100 * 1024)), entity_id=1)
    small = events.envelope(LargeDocumentPayload(marker="small", text="x"), entity_id=2)
    with pytest.raises(PublishError, match="claim-check-unstored"):
        sender.publish(large)
    with pytest.raises(PublishError) as failed:
        sender.publish_batch([large, small])
    assert failed.value.failed_ids == ("0",)  # the small one went out
    got = sqs.receive_message(QueueUrl=topology.queue_url, WaitTimeSeconds=2, MaxNumberOfMessages=10)
    bodies = [json.loads(json.loads(m["Body"])["Message"]) for m in got.get("Messages", [])]
    assert [b["payload"]["marker"] for b in bodies] == ["small"]


@pytest.mark.postgres
def test_a_large_event_through_the_outbox_is_claim_checked_by_the_relay_and_handled(
    sns: Any, s3: Any, bucket: str, worker: Worker, postgres_url: str
) -> None:
    import psycopg
    from sqlalchemy import create_engine
    from sqlalchemy.orm import sessionmaker

    from eventbus.adapters.sqlalchemy.outbox import SqlAlchemyOutboxStore
    from eventbus.adapters.sqlalchemy.tables import metadata
    from eventbus.core.outbox import OutboxPublisher, OutboxRelay

    # a schema of its own: the shared database's eventbus tables are the Django migrations' (tests/contract)
    schema = f"claims_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f"create schema {schema}")
    engine = create_engine(
        postgres_url.replace("postgresql://", "postgresql+psycopg://"),
        connect_args={"options": f"-csearch_path={schema}"},
    )
    try:
        metadata.create_all(engine)
        store = SqlAlchemyOutboxStore(sessionmaker(engine))
        relay = OutboxRelay(store, publisher(sns, s3, bucket, worker.topology.topic_arn), longest_publish=30.0)
        marker = f"outbox-{uuid.uuid4().hex[:8]}"
        text = text_of(400 * 1024)
        envelope = EventPublisher(InMemoryPublisher(), "claims-test").envelope(
            LargeDocumentPayload(marker=marker, text=text), entity_id=marker
        )
        OutboxPublisher(store, relay=relay).publish(envelope)  # stored, then relayed at once (the fast path)
        (row,) = wait_until(lambda: [r for r in worker.records("largeDocument") if r["marker"] == marker], timeout=30)
        assert row["digest"] == hashlib.sha256(text.encode()).hexdigest()
        assert relay.drain().sent == 0  # nothing left behind
    finally:
        engine.dispose()
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            connection.execute(f"drop schema {schema} cascade")


def test_a_worker_told_to_keep_objects_leaves_them_for_the_lifecycle_rule(
    sns: Any, sqs: Any, s3: Any, bucket: str, sns_sqs_endpoint: str, s3_endpoint: str, tmp_path: Path
) -> None:
    topology = make_topology(sns, sqs, f"claims-keep-{uuid.uuid4().hex[:8]}")
    keeper = start_worker(
        "tests.integration.claim_app",
        topology,
        sns_sqs_endpoint,
        tmp_path,
        env={"EVENTBUS_S3_ENDPOINT_URL": s3_endpoint, "EVENTBUS_LARGE_PAYLOAD_KEEP": "true"},
    )
    try:
        store = RecordingStore(s3, bucket)
        sender = SnsPublisher(sns, topic_arn=topology.topic_arn, payload_store=store, claim_check_threshold=THRESHOLD)
        marker = f"kept-{uuid.uuid4().hex[:8]}"
        document = LargeDocumentPayload(marker=marker, text=text_of(150 * 1024))
        sender.publish(EventPublisher(InMemoryPublisher(), "claims-test").envelope(document, entity_id=1))
        wait_until(lambda: [r for r in keeper.records("largeDocument") if r["marker"] == marker], timeout=30)
        keeper.stop()  # its deletes and any object delete have gone out by now
        (pointer,) = store.stored
        assert pointer.key in keys(s3, bucket)
    finally:
        keeper.stop()


def test_an_unreachable_s3_leaves_the_message_for_sqs_which_dead_letters_it_after_its_receives(
    sns: Any, sqs: Any, s3: Any, bucket: str, sns_sqs_endpoint: str, tmp_path: Path
) -> None:
    topology = make_topology(sns, sqs, f"claims-nos3-{uuid.uuid4().hex[:8]}", max_receive_count=2, visibility=1)
    cut_off = start_worker(
        "tests.integration.claim_app",
        topology,
        sns_sqs_endpoint,
        tmp_path,
        env={"EVENTBUS_S3_ENDPOINT_URL": "http://127.0.0.1:9"},  # nothing listens there
    )
    try:
        pointer = S3PayloadStore(s3, bucket).put(b'{"metadata": {"eventName": "largeDocument"}, "payload": {}}')
        sns.publish(TopicArn=topology.topic_arn, Message=pointer.to_json())

        (letter,) = wait_until(lambda: letters_naming(sqs, topology.dlq_url, pointer), timeout=60)
        # moved by SQS's redrive (no eventbus reason): the worker never judged the event, it could not read it
        assert "eventbus-reason" not in letter.get("MessageAttributes", {})
        log = cut_off.log()
        assert log.count("claim-check-unreadable") >= 2  # once per receive: no hot loop, no retry of its own
        assert log.count("claim-check-unreadable") <= 4
        assert pointer.key in keys(s3, bucket)  # kept: a redrive once S3 is back finds it
    finally:
        cut_off.stop()
