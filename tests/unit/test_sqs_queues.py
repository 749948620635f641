"""SqsQueues: one attribute cache per queue URL, the dead-letter queue resolved lazily, vendor errors translated."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from eventbus.adapters.aws.sqs import ATTRIBUTES_TTL, DEFAULT_VISIBILITY, SqsQueues
from eventbus.errors import TransportError

URL = "https://sqs.eu-west-2.amazonaws.com/123456789012/shop__queue"
DLQ_URL = "https://sqs.eu-west-2.amazonaws.com/123456789012/shop__dlq"
REDRIVE = json.dumps({"deadLetterTargetArn": "arn:aws:sqs:eu-west-2:123456789012:shop__dlq", "maxReceiveCount": "3"})


class FakeSqs:
    """The boto3 SQS client calls SqsQueues makes, recorded; ``fail`` makes the next calls raise."""

    def __init__(self, attributes: dict[str, str] | None = None) -> None:
        self.attributes = {"VisibilityTimeout": "45", "RedrivePolicy": REDRIVE} if attributes is None else attributes
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail: Exception | None = None
        self.failed_ids: list[str] = []

    def _record(self, operation: str, kwargs: dict[str, Any]) -> None:
        self.calls.append((operation, kwargs))
        if self.fail is not None:
            raise self.fail

    def get_queue_attributes(self, **kwargs: Any) -> dict[str, Any]:
        self._record("GetQueueAttributes", kwargs)
        return {"Attributes": dict(self.attributes)}

    def get_queue_url(self, **kwargs: Any) -> dict[str, Any]:
        self._record("GetQueueUrl", kwargs)
        return {"QueueUrl": DLQ_URL}

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        self._record("SendMessage", kwargs)
        return {"MessageId": "copy-1"}

    def change_message_visibility(self, **kwargs: Any) -> dict[str, Any]:
        self._record("ChangeMessageVisibility", kwargs)
        return {}

    def delete_message_batch(self, **kwargs: Any) -> dict[str, Any]:
        self._record("DeleteMessageBatch", kwargs)
        return {"Failed": [{"Id": i, "Code": "ReceiptHandleIsInvalid"} for i in self.failed_ids]}

    def change_message_visibility_batch(self, **kwargs: Any) -> dict[str, Any]:
        self._record("ChangeMessageVisibilityBatch", kwargs)
        return {"Failed": [{"Id": i, "Code": "ReceiptHandleIsInvalid"} for i in self.failed_ids]}

    def operations(self) -> list[str]:
        return [operation for operation, _ in self.calls]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(client: FakeSqs) -> tuple[SqsQueues, Clock, list[str]]:
    clock = Clock()
    asked: list[str] = []

    def client_for(queue: str) -> FakeSqs:
        asked.append(queue)
        return client

    return SqsQueues(client_for, clock=clock), clock, asked


def client_error(operation: str, code: str = "AWS.SimpleQueueService.NonExistentQueue") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "The specified queue does not exist."}}, operation)


def test_one_call_reads_the_visibility_timeout_and_the_redrive_policy() -> None:
    client = FakeSqs()
    queues, _, asked = make(client)
    assert queues.visibility_timeout("shop__queue", URL) == 45
    assert queues.dead_letter_url("shop__queue", URL) == DLQ_URL
    assert client.operations() == ["GetQueueAttributes", "GetQueueUrl"]
    _, kwargs = client.calls[0]
    assert kwargs == {"QueueUrl": URL, "AttributeNames": ["VisibilityTimeout", "RedrivePolicy"]}
    assert client.calls[1][1] == {"QueueName": "shop__dlq", "QueueOwnerAWSAccountId": "123456789012"}
    assert asked == ["shop__queue", "shop__queue"]


def test_the_dead_letter_queue_is_looked_up_only_when_asked_for_then_cached() -> None:
    client = FakeSqs()
    queues, _, _ = make(client)
    queues.visibility_timeout("shop__queue", URL)
    queues.visibility_timeout("shop__queue", URL)
    assert client.operations() == ["GetQueueAttributes"]
    for _ in range(3):
        assert queues.dead_letter_url("shop__queue", URL) == DLQ_URL
    assert client.operations() == ["GetQueueAttributes", "GetQueueUrl"]


def test_the_dead_letter_lookup_alone_reads_the_attributes_once_for_the_visibility_too() -> None:
    client = FakeSqs()
    queues, _, _ = make(client)
    assert queues.dead_letter_url("shop__queue", URL) == DLQ_URL
    assert queues.visibility_timeout("shop__queue", URL) == 45
    assert client.operations() == ["GetQueueAttributes", "GetQueueUrl"]


def test_a_queue_without_redrive_policy_has_no_dead_letter_queue() -> None:
    client = FakeSqs({"VisibilityTimeout": "30"})
    queues, _, _ = make(client)
    assert queues.dead_letter_url("shop__queue", URL) is None
    assert queues.dead_letter_url("shop__queue", URL) is None
    assert client.operations() == ["GetQueueAttributes"]


def test_attributes_are_read_again_after_the_ttl() -> None:
    client = FakeSqs()
    queues, clock, _ = make(client)
    queues.dead_letter_url("shop__queue", URL)
    clock.now += ATTRIBUTES_TTL - 0.1
    client.attributes["VisibilityTimeout"] = "90"
    assert queues.visibility_timeout("shop__queue", URL) == 45
    assert queues.dead_letter_url("shop__queue", URL) == DLQ_URL
    assert client.operations() == ["GetQueueAttributes", "GetQueueUrl"]
    clock.now += 0.1
    assert queues.visibility_timeout("shop__queue", URL) == 90
    assert queues.dead_letter_url("shop__queue", URL) == DLQ_URL
    assert client.operations() == ["GetQueueAttributes", "GetQueueUrl", "GetQueueAttributes", "GetQueueUrl"]


def test_the_cache_is_per_queue_url() -> None:
    client = FakeSqs()
    queues, _, _ = make(client)
    queues.visibility_timeout("shop__queue", URL)
    queues.visibility_timeout("other__queue", URL.replace("shop", "other"))
    assert client.operations() == ["GetQueueAttributes", "GetQueueAttributes"]


def test_an_unreadable_visibility_timeout_falls_back_to_the_default_then_the_last_value(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = FakeSqs()
    queues, clock, _ = make(client)
    client.fail = EndpointConnectionError(endpoint_url="http://localhost:4566/")
    with caplog.at_level(logging.DEBUG, logger="eventbus.transport"):
        assert queues.visibility_timeout("shop__queue", URL) == DEFAULT_VISIBILITY
    assert "visibility timeout of shop__queue unknown (EndpointConnectionError: Could not connect" in caplog.text
    assert "assuming 30s" in caplog.text
    # the fallback is kept until the attributes are due again: no blocking call on every receive meanwhile
    assert queues.visibility_timeout("shop__queue", URL) == DEFAULT_VISIBILITY
    assert client.operations() == ["GetQueueAttributes"]
    client.fail = None
    clock.now += ATTRIBUTES_TTL
    assert queues.visibility_timeout("shop__queue", URL) == 45
    client.fail = client_error("GetQueueAttributes")
    clock.now += ATTRIBUTES_TTL
    assert queues.visibility_timeout("shop__queue", URL) == 45


def test_a_missing_or_malformed_visibility_timeout_falls_back() -> None:
    client = FakeSqs({"VisibilityTimeout": "soon", "RedrivePolicy": REDRIVE})
    queues, _, _ = make(client)
    assert queues.visibility_timeout("shop__queue", URL) == DEFAULT_VISIBILITY
    assert queues.dead_letter_url("shop__queue", URL) == DLQ_URL
    assert client.operations() == ["GetQueueAttributes", "GetQueueUrl"]


def test_a_failed_read_for_the_visibility_does_not_hide_the_dead_letter_queue() -> None:
    client = FakeSqs()
    queues, _, _ = make(client)
    client.fail = client_error("GetQueueAttributes")
    queues.visibility_timeout("shop__queue", URL)
    client.fail = None
    assert queues.dead_letter_url("shop__queue", URL) == DLQ_URL
    assert client.operations() == ["GetQueueAttributes", "GetQueueAttributes", "GetQueueUrl"]


def test_vendor_errors_become_transport_errors_with_the_vendor_chained() -> None:
    client = FakeSqs()
    queues, _, _ = make(client)
    vendor = client_error("GetQueueAttributes")
    client.fail = vendor
    with pytest.raises(TransportError) as raised:
        queues.dead_letter_url("shop__queue", URL)
    assert raised.value.__cause__ is vendor
    assert "NonExistentQueue" in str(raised.value)
    for error in (EndpointConnectionError(endpoint_url="http://localhost:4566/"), ConnectionRefusedError(111, "no")):
        client.fail = error
        with pytest.raises(TransportError) as raised:
            queues.change_visibility("shop__queue", URL, "rh-1", 0)
        assert raised.value.__cause__ is error


def test_a_failed_dead_letter_url_lookup_is_not_cached_but_the_attributes_are() -> None:
    client = FakeSqs()
    queues, _, _ = make(client)
    queues.visibility_timeout("shop__queue", URL)
    client.fail = client_error("GetQueueUrl")
    with pytest.raises(TransportError):
        queues.dead_letter_url("shop__queue", URL)
    client.fail = None
    assert queues.dead_letter_url("shop__queue", URL) == DLQ_URL
    assert client.operations() == ["GetQueueAttributes", "GetQueueUrl", "GetQueueUrl"]


def test_a_failed_dead_letter_copy_never_names_the_body() -> None:
    client = FakeSqs()
    queues, _, _ = make(client)
    client.fail = client_error("SendMessage", code="InvalidMessageContents")
    with pytest.raises(TransportError) as raised:
        queues.send_to_dead_letter("shop__queue", DLQ_URL, '{"secret": "hunter2"}', "m-1", "bad")
    assert "hunter2" not in str(raised.value)
    assert "InvalidMessageContents" in str(raised.value)


def test_the_dead_letter_copy_carries_the_reason_the_source_queue_and_message_id() -> None:
    client = FakeSqs()
    queues, _, asked = make(client)
    queues.send_to_dead_letter("shop__queue", DLQ_URL, "body", "m-1", "x" * 1500)
    queues.send_to_dead_letter("shop__queue", DLQ_URL, "body", "m-2", "")
    (_, first), (_, second) = client.calls
    assert first["QueueUrl"] == DLQ_URL
    assert first["MessageBody"] == "body"
    assert first["MessageAttributes"] == {
        "eventbus-reason": {"DataType": "String", "StringValue": "x" * 1000},
        "eventbus-source-queue": {"DataType": "String", "StringValue": "shop__queue"},
        "eventbus-source-message-id": {"DataType": "String", "StringValue": "m-1"},
    }
    assert second["MessageAttributes"]["eventbus-reason"]["StringValue"] == "unknown"
    assert asked == ["shop__queue", "shop__queue"]


def test_change_visibility_and_the_synchronous_batches() -> None:
    client = FakeSqs()
    queues, _, _ = make(client)
    queues.change_visibility("shop__queue", URL, "rh-1", 0)
    assert client.calls[-1] == (
        "ChangeMessageVisibility",
        {"QueueUrl": URL, "ReceiptHandle": "rh-1", "VisibilityTimeout": 0},
    )
    deletes = [{"Id": "0", "ReceiptHandle": "rh-1"}, {"Id": "1", "ReceiptHandle": "rh-2"}]
    client.failed_ids = ["1"]
    assert queues.delete_batch("shop__queue", URL, deletes) == {"1"}
    assert client.calls[-1] == ("DeleteMessageBatch", {"QueueUrl": URL, "Entries": deletes})
    changes = [{"Id": "0", "ReceiptHandle": "rh-1", "VisibilityTimeout": 60}]
    client.failed_ids = []
    assert queues.change_visibility_batch("shop__queue", URL, changes) == set()
    assert client.calls[-1] == ("ChangeMessageVisibilityBatch", {"QueueUrl": URL, "Entries": changes})
