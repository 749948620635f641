"""What a queue receives is larger than what SNS was given: with raw delivery off (the default), SNS wraps each event
in its JSON notification (the event escaped as a string, ids, signature, URLs). A queue refuses a wrapped event over its
``MaximumMessageSize``, and SNS has already accepted the publish: LocalStack (like AWS) then drops it, moto fails the
publish with SQS's error. So the publisher bounds the wrapped size too (:func:`sns_delivered_size`) and refuses, before
sending, an event a queue of ``max_message_bytes`` could not take; every event within the bound arrives."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from eventbus.adapters.aws import SnsPublisher, sns_delivered_size
from eventbus.adapters.memory import InMemoryPublisher
from eventbus.core.envelope import Envelope, read_message_body
from eventbus.core.publishing import EventPublisher
from eventbus.errors import EnvelopeError, EnvelopeRejection, PublishError
from tests.integration.claim_app import LargeDocumentPayload
from tests.support import wait_until

pytestmark = pytest.mark.integration

#: The queue's MaximumMessageSize and the publisher's max_message_bytes (SQS takes 1,024 and up).
LIMIT = 4096
EVENTS = EventPublisher(InMemoryPublisher(), "wrapper-test")


def queue_behind_topic(sns: Any, sqs: Any) -> tuple[str, str]:
    """A topic and a queue of ``LIMIT`` bytes subscribed to it, raw delivery off; their ARN and URL."""
    name = f"wrap-{uuid.uuid4().hex[:10]}"
    topic_arn = sns.create_topic(Name=name)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=name, Attributes={"MaximumMessageSize": str(LIMIT)})["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return topic_arn, queue_url


def event(marker: str, text: str) -> Envelope:
    return EVENTS.envelope(LargeDocumentPayload(marker=marker, text=text), entity_id=marker)


def received(sqs: Any, queue_url: str) -> list[str]:
    got = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1, MaxNumberOfMessages=10).get("Messages", [])
    for message in got:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return [message["Body"] for message in got]


def sns_counted(envelope: Envelope) -> int:
    """What SNS counts against a topic's limit: the message and its eventName attribute."""
    return len(envelope.to_json().encode()) + len("eventName") + len("String") + len(envelope.event_name)


def test_an_event_a_queue_cannot_take_once_wrapped_is_refused_before_it_is_sent(sns: Any, sqs: Any) -> None:
    topic_arn, queue_url = queue_behind_topic(sns, sqs)
    publisher = SnsPublisher(sns, topic_arn=topic_arn, max_message_bytes=LIMIT)
    bare = sns_counted(event("large", ""))
    large = event("large", "x" * (LIMIT - 100 - bare))  # SNS takes it (under LIMIT), wrapped it is over LIMIT
    assert sns_counted(large) <= LIMIT < sns_delivered_size(large, topic_arn)

    with pytest.raises(PublishError) as raised:
        publisher.publish(large)
    assert isinstance(raised.value.__cause__, EnvelopeError)
    assert raised.value.__cause__.reason is EnvelopeRejection.OVERSIZED
    assert "raw delivery" in str(raised.value)

    small = event("small", "fits")
    with pytest.raises(PublishError) as raised:
        publisher.publish_batch([large, small])  # the large one's position fails, the small one is sent
    assert isinstance(raised.value.__cause__, EnvelopeError)
    bodies = wait_until(lambda: received(sqs, queue_url), timeout=10)
    assert [read_message_body(body, max_bytes=LIMIT)[0].payload["marker"] for body in bodies] == ["small"]
    assert received(sqs, queue_url) == []


#: Texts whose escaping in SNS's wrapper costs the most: quotes and backslashes (escaped twice: in the event's JSON,
#: then in the wrapper's string), slashes, non-ASCII (the emulators write \\u escapes), emoji (two \\u escapes each),
#: control characters.
TEXTS = {
    "ascii": "plain text ",
    "quotes": '"q" \\ ',
    "slashes": "https://example.com/a/b ",
    "non-ascii": "é ü 漢字 ",
    "emoji": "😀🚀 ",
    "controls": "line\n\ttab\r ",
}


@pytest.mark.parametrize("kind", TEXTS)
def test_the_largest_event_the_publisher_takes_arrives_whole_within_the_bound(sns: Any, sqs: Any, kind: str) -> None:
    topic_arn, queue_url = queue_behind_topic(sns, sqs)
    publisher = SnsPublisher(sns, topic_arn=topic_arn, max_message_bytes=LIMIT)
    low, high = 0, LIMIT  # repetitions of the text: the largest whose bound is within LIMIT
    while low < high:
        middle = (low + high + 1) // 2
        if sns_delivered_size(event(kind, TEXTS[kind] * middle), topic_arn) <= LIMIT:
            low = middle
        else:
            high = middle - 1
    assert low > 0
    largest = event(kind, TEXTS[kind] * low)
    publisher.publish(largest)
    with pytest.raises(PublishError):
        publisher.publish(event(kind, TEXTS[kind] * (low + 1)))

    [body] = wait_until(lambda: received(sqs, queue_url), timeout=10)
    assert len(body.encode()) <= sns_delivered_size(largest, topic_arn)
    envelope, _ = read_message_body(body, max_bytes=LIMIT)
    assert envelope.payload["text"] == TEXTS[kind] * low
