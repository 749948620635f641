"""eventbus's SQS channel outside a worker (no event loop): deletes go out synchronously, in batches, and failed
entries are retried, then logged with their message id."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from kombu import Connection

from eventbus.celery.transport import Channel, Transport
from eventbus.celery.transport.batching import Entry

pytestmark = pytest.mark.integration


@pytest.fixture
def channel(sns_sqs_endpoint: str) -> Iterator[Channel]:
    netloc = urlsplit(sns_sqs_endpoint).netloc
    connection = Connection(
        f"sqs://test:test@{netloc}",
        transport=Transport,
        transport_options={"region": "eu-west-2", "is_secure": False, "ack_flush_interval": 0.01},
    )
    chan = connection.channel()
    chan.hub = None  # as in a plain kombu consumer: no event loop
    yield chan
    connection.release()


def depth(sqs: Any, url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


def test_acks_without_an_event_loop_delete_at_once(channel: Channel, sqs: Any, unique: str) -> None:
    url = sqs.create_queue(QueueName=f"chan-{unique}")["QueueUrl"]
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=f'{{"n": {i}}}')
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30)["Messages"]
    for message in received:
        channel._buffer(channel._deletes, url, Entry(message["ReceiptHandle"], message["MessageId"], f"chan-{unique}"))
    assert len(channel._deletes) == 0
    assert depth(sqs, url) == 0


def test_failed_entries_are_retried_then_logged_with_their_message_id(
    channel: Channel, sqs: Any, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = sqs.create_queue(QueueName=f"chan-{unique}")["QueueUrl"]
    entry = Entry("not-a-receipt-handle", "message-42", f"chan-{unique}")
    failed = {"Failed": [{"Id": "0", "Code": "ReceiptHandleIsInvalid"}]}
    with caplog.at_level(logging.WARNING, logger="eventbus.transport"):
        # an async batch reported the entry as failed: it is sent again (here, without an event loop, at once)
        channel._on_batch_done(channel._deletes, url, [entry], failed)
    assert entry.attempts == 1
    assert len(channel._deletes) == 0
    assert "message-42" in caplog.text
    assert "SQS will redeliver it" in caplog.text


def test_a_stale_receipt_handle_is_logged_not_raised(
    channel: Channel, sqs: Any, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = sqs.create_queue(QueueName=f"chan-{unique}")["QueueUrl"]
    with caplog.at_level(logging.WARNING, logger="eventbus.transport"):
        channel._send_sync(channel._deletes, url, [Entry("stale-handle", "message-7", f"chan-{unique}")])
    assert "message-7" in caplog.text


def test_an_acknowledged_message_no_longer_refers_to_its_rejection(channel: Channel, sqs: Any, unique: str) -> None:
    # the consumer gives each message a Rejection that refers back to it: kept after the acknowledgement, every event
    # would leave a reference cycle for the cyclic garbage collector (bench/soak.py: ~14 objects per event)
    name = f"chan-{unique}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody='{"n": 1}')
    message = channel.basic_get(name, no_ack=False)
    assert message is not None
    message.reject_log_error = object()
    channel.basic_ack(message.delivery_tag)
    assert "reject_log_error" not in vars(message)
    assert depth(sqs, url) == 0
