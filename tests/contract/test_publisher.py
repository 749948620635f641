"""The Publisher contract (:mod:`eventbus.testing.contracts.publisher`) run against every adapter: in-memory, SNS."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from eventbus.adapters.aws import SnsPublisher
from eventbus.adapters.memory import InMemoryPublisher
from eventbus.errors import PublishError
from eventbus.ports import Publisher
from eventbus.testing.contracts import PublisherContract
from eventbus.testing.contracts.publisher import seed_envelope


class TestInMemoryPublisher(PublisherContract):
    def make_publisher(self, *, failing: bool = False) -> Publisher:
        if failing:
            return InMemoryPublisher(fail_with="down")
        self.publisher = InMemoryPublisher()
        return self.publisher

    def delivered(self, expected: int) -> list[str]:
        return [e.to_json() for e in self.publisher.published]


@pytest.mark.integration
class TestSnsPublisher(PublisherContract):
    @pytest.fixture(autouse=True)
    def _topology(self, sns: Any, sqs: Any, unique: str) -> None:
        self.sns, self.sqs = sns, sqs
        self.topic_arn = sns.create_topic(Name=f"pub-{unique}")["TopicArn"]
        self.queue_url = sqs.create_queue(QueueName=f"pub-{unique}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})

    def make_publisher(self, *, failing: bool = False) -> Publisher:
        if failing:
            missing = self.topic_arn.rsplit(":", 1)[0] + f":missing-{uuid.uuid4().hex}"
            return SnsPublisher(self.sns, topic_arn=missing)
        return SnsPublisher(self.sns, topic_arn=self.topic_arn)

    def delivered(self, expected: int) -> list[str]:
        bodies: list[str] = []
        deadline = time.monotonic() + 10
        while len(bodies) < expected and time.monotonic() < deadline:
            response = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            bodies += [m["Body"] for m in response.get("Messages", [])]
        return bodies

    def test_an_event_over_the_payload_limit_fails_by_name_and_size_and_the_others_arrive(self) -> None:
        envelopes = [seed_envelope(0), seed_envelope(1, padding=1024 * 1024), seed_envelope(2)]
        with pytest.raises(PublishError) as caught:
            self.make_publisher().publish_batch(envelopes)
        assert caught.value.failed_ids == ("1",)
        assert "'doGood'" in str(caught.value)
        assert " bytes" in str(caught.value)
        assert "ppp" not in str(caught.value)
        bodies = self.delivered(2)
        assert sorted(json.loads(b)["metadata"]["entityId"] for b in bodies) == ["entity-0", "entity-2"]

    def test_topic_resolved_by_name_when_no_arn_is_given(self, unique: str) -> None:
        self.sns.create_topic(Name=f"byname-{unique}")
        publisher = SnsPublisher(self.sns, topic_name=f"byname-{unique}")
        assert publisher.topic_arn.endswith(f":byname-{unique}")
