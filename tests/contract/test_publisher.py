"""The Publisher port's contract, run against every adapter (in-memory and SNS)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from eventbus.adapters.memory import InMemoryPublisher
from eventbus.adapters.sns import SnsPublisher
from eventbus.core.envelope import Envelope, decode_message_body
from eventbus.errors import PublishError
from eventbus.ports import Publisher
from tests.seed import SEED_DO_GOOD


def envelope(n: int, padding: int = 0) -> Envelope:
    """The seed's ``doGood`` event for ``entity-{n}``, its payload padded with ``padding`` characters."""
    body = json.loads(SEED_DO_GOOD)
    body["metadata"]["entityId"] = f"entity-{n}"
    if padding:
        body["payload"]["padding"] = "p" * padding
    return decode_message_body(json.dumps(body), max_bytes=2 * len(json.dumps(body)))


class PublisherContract:
    """What every Publisher must do. Subclasses provide the adapter and a way to read back what arrived."""

    __test__ = False

    def make_publisher(self) -> Publisher:
        raise NotImplementedError

    def make_failing_publisher(self) -> Publisher:
        raise NotImplementedError

    def arrived(self, expected: int) -> list[str]:
        """The JSON bodies delivered so far (waiting up to a few seconds for ``expected`` of them)."""
        raise NotImplementedError

    def test_publish_returns_a_message_id_and_delivers_the_envelope_unchanged(self) -> None:
        message_id = self.make_publisher().publish(envelope(1))
        assert isinstance(message_id, str)
        assert message_id
        [body] = self.arrived(1)
        assert json.loads(body) == json.loads(envelope(1).to_json())

    def test_batch_returns_ids_in_order_and_delivers_everything(self) -> None:
        envelopes = [envelope(n) for n in range(25)]
        ids = self.make_publisher().publish_batch(envelopes)
        assert len(ids) == 25
        assert len(set(ids)) == 25
        bodies = self.arrived(25)
        assert sorted(json.loads(b)["metadata"]["entityId"] for b in bodies) == sorted(f"entity-{n}" for n in range(25))

    def test_a_batch_of_more_than_256_kib_in_all_is_delivered(self) -> None:
        # ten events of 30 KiB: each is fine alone, together they exceed what one SNS PublishBatch call may carry
        envelopes = [envelope(n, padding=30 * 1024) for n in range(10)]
        ids = self.make_publisher().publish_batch(envelopes)
        assert len(ids) == 10
        assert all(ids)
        bodies = self.arrived(10)
        assert sorted(json.loads(b)["metadata"]["entityId"] for b in bodies) == sorted(f"entity-{n}" for n in range(10))

    def test_empty_batch_is_a_no_op(self) -> None:
        assert self.make_publisher().publish_batch([]) == []

    def test_failure_raises_publish_error(self) -> None:
        publisher = self.make_failing_publisher()
        with pytest.raises(PublishError):
            publisher.publish(envelope(1))
        with pytest.raises(PublishError) as caught:
            publisher.publish_batch([envelope(1), envelope(2)])
        assert set(caught.value.failed_ids) == {"0", "1"}


class TestInMemoryPublisher(PublisherContract):
    __test__ = True

    @pytest.fixture(autouse=True)
    def _publisher(self) -> None:
        self.publisher = InMemoryPublisher()

    def make_publisher(self) -> Publisher:
        return self.publisher

    def make_failing_publisher(self) -> Publisher:
        return InMemoryPublisher(fail_with="down")

    def arrived(self, expected: int) -> list[str]:
        return [e.to_json() for e in self.publisher.published]


@pytest.mark.integration
class TestSnsPublisher(PublisherContract):
    __test__ = True

    @pytest.fixture(autouse=True)
    def _topology(self, sns: Any, sqs: Any, unique: str) -> None:
        self.sns, self.sqs = sns, sqs
        self.topic_arn = sns.create_topic(Name=f"pub-{unique}")["TopicArn"]
        self.queue_url = sqs.create_queue(QueueName=f"pub-{unique}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})

    def make_publisher(self) -> Publisher:
        return SnsPublisher(self.sns, topic_arn=self.topic_arn)

    def make_failing_publisher(self) -> Publisher:
        missing = self.topic_arn.rsplit(":", 1)[0] + f":missing-{uuid.uuid4().hex}"
        return SnsPublisher(self.sns, topic_arn=missing)

    def arrived(self, expected: int) -> list[str]:
        bodies: list[str] = []
        deadline = time.monotonic() + 10
        while len(bodies) < expected and time.monotonic() < deadline:
            response = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            bodies += [m["Body"] for m in response.get("Messages", [])]
        return bodies

    def test_an_event_over_the_payload_limit_fails_by_name_and_size_and_the_others_arrive(self) -> None:
        envelopes = [envelope(0), envelope(1, padding=300 * 1024), envelope(2)]
        with pytest.raises(PublishError) as caught:
            self.make_publisher().publish_batch(envelopes)
        assert caught.value.failed_ids == ("1",)
        assert "'doGood'" in str(caught.value)
        assert " bytes" in str(caught.value)
        assert "ppp" not in str(caught.value)
        bodies = self.arrived(2)
        assert sorted(json.loads(b)["metadata"]["entityId"] for b in bodies) == ["entity-0", "entity-2"]

    def test_topic_resolved_by_name_when_no_arn_is_given(self, unique: str) -> None:
        self.sns.create_topic(Name=f"byname-{unique}")
        publisher = SnsPublisher(self.sns, topic_name=f"byname-{unique}")
        assert publisher.topic_arn.endswith(f":byname-{unique}")
