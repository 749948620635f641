"""FIFO topology on the SNS/SQS endpoint (the embedded emulator, or ``EVENTBUS_TEST_ENDPOINT_URL``): ``apply`` creates a
FIFO topic, queue and dead-letter queue that ``check`` then finds clean; a message published to the topic with a group
reaches the queue with that group; ``eventbus topology plan|apply|check -A app`` with ``EVENTBUS_FIFO=true``; and a
standard queue under the FIFO name the code wants is reported by ``check`` and refused by ``plan``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from eventbus.adapters.aws import AwsTopologyStore
from eventbus.core.envelope import Envelope, Metadata, decode_message_body
from eventbus.core.topology import ChangeKind, DriftKind, Topology, topology_of
from eventbus.core.topology_plan import drift, plan
from eventbus.errors import ConfigurationError
from tests.integration.test_cli_topology import ORDER_PLACED, ORDER_SHIPPED
from tests.integration.test_cli_topology import topology as run_cli

pytestmark = pytest.mark.integration

EVENTS = ["orderPlaced", "orderShipped"]


class Made:
    """The FIFO topic and queues one test names: deleted at its end."""

    def __init__(self, sns: Any, sqs: Any, unique: str) -> None:
        self.sns, self.sqs = sns, sqs
        self.topic = f"fifo-t-{unique}.fifo"
        self.queue = f"fifo-q-{unique}.fifo"
        self.dead_letter_queue = f"fifo-q-{unique}__dlq.fifo"

    def topology(self) -> Topology:
        return topology_of(topic=self.topic, queue=self.queue, event_names=EVENTS, fifo=True)

    def topic_arn(self) -> str | None:
        arns = [t["TopicArn"] for t in self.sns.list_topics()["Topics"] if t["TopicArn"].endswith(f":{self.topic}")]
        return arns[0] if arns else None

    def queue_attributes(self, name: str) -> dict[str, str]:
        url = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
        return dict(self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"])

    def cleanup(self) -> None:
        arn = self.topic_arn()
        if arn:
            self.sns.delete_topic(TopicArn=arn)
        for name in (self.queue, self.dead_letter_queue):
            with contextlib.suppress(ClientError):  # never created
                self.sqs.delete_queue(QueueUrl=self.sqs.get_queue_url(QueueName=name)["QueueUrl"])


@pytest.fixture
def made(sns: Any, sqs: Any, unique: str) -> Iterator[Made]:
    found = Made(sns, sqs, unique)
    yield found
    found.cleanup()


def test_apply_creates_fifo_resources_check_is_clean_and_a_group_reaches_the_queue(
    sns: Any, sqs: Any, made: Made
) -> None:
    store = AwsTopologyStore(sns, sqs)
    topology = made.topology()
    changes = plan(topology, store.read(topology))
    assert {(c.kind, c.resource) for c in changes if c.values.get("fifo")} == {
        (ChangeKind.CREATE_TOPIC, made.topic),
        (ChangeKind.CREATE_QUEUE, made.queue),
        (ChangeKind.CREATE_QUEUE, made.dead_letter_queue),
    }
    store.apply(topology, changes)
    deployed = store.read(topology)
    assert drift(topology, deployed) == []
    assert plan(topology, deployed) == []

    for name in (made.queue, made.dead_letter_queue):
        attributes = made.queue_attributes(name)
        assert (attributes["FifoQueue"], attributes["ContentBasedDeduplication"]) == ("true", "false"), name
    redrive = json.loads(made.queue_attributes(made.queue)["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(f":{made.dead_letter_queue}")
    topic_arn = made.topic_arn()
    assert topic_arn is not None
    topic_attributes = sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"]
    assert (topic_attributes["FifoTopic"], topic_attributes["ContentBasedDeduplication"]) == ("true", "false")

    envelope = Envelope(metadata=Metadata(event_name="orderPlaced", entity_id="7"), payload={"orderId": 7})
    sns.publish(
        TopicArn=topic_arn,
        Message=envelope.to_json(),
        MessageGroupId="g1",
        MessageDeduplicationId="d1",
        MessageAttributes={"eventName": {"DataType": "String", "StringValue": "orderPlaced"}},
    )
    url = sqs.get_queue_url(QueueName=made.queue)["QueueUrl"]
    received = sqs.receive_message(
        QueueUrl=url, MessageSystemAttributeNames=["All"], MaxNumberOfMessages=10, WaitTimeSeconds=5
    ).get("Messages", [])
    assert len(received) == 1
    (message,) = received
    assert message["Attributes"]["MessageGroupId"] == "g1"
    decoded = decode_message_body(message["Body"])  # an SNS notification: raw delivery is off
    assert (decoded.event_name, decoded.metadata.entity_id, decoded.payload) == ("orderPlaced", "7", {"orderId": 7})


def test_a_standard_queue_where_the_code_wants_fifo_is_reported_and_refused(sns: Any, sqs: Any, made: Made) -> None:
    store = AwsTopologyStore(sns, sqs)
    topology = made.topology()
    try:
        sqs.create_queue(QueueName=made.queue)  # no FifoQueue: a standard queue with a FIFO name
    except ClientError as exc:
        # AWS (and emulators that follow it) refuse a standard queue named .fifo: FIFO-ness then follows the name
        refusal = exc.response["Error"]["Code"]
    else:
        refusal = ""
    if refusal:
        assert refusal in {"InvalidParameterValue", "InvalidParameterValueException"}
        return
    deployed = store.read(topology)
    assert deployed.queue is not None
    assert "FifoQueue" not in deployed.queue.attributes or deployed.queue.attributes["FifoQueue"] == "false"
    (found,) = [item for item in drift(topology, deployed) if item.kind is DriftKind.FIFO]
    assert found.detail.startswith(f"queue {made.queue} is a standard queue, the code wants a FIFO one")
    assert "must be recreated" in found.detail
    with pytest.raises(ConfigurationError, match=rf"queue {made.queue} is a standard queue"):
        plan(topology, deployed)
    assert made.topic_arn() is None  # refused: nothing was made


def test_cli_plan_apply_check_with_fifo_on_and_a_standard_queue_refused(
    sns_sqs_endpoint: str, sqs: Any, made: Made
) -> None:
    names = {"EVENTBUS_TOPIC": made.topic, "EVENTBUS_QUEUE_NAME": made.queue, "EVENTBUS_FIFO": "true"}
    planned = run_cli(sns_sqs_endpoint, names, "plan")
    assert planned.returncode == 0, planned.stderr
    lines = planned.stdout.splitlines()
    assert lines[0].startswith(f"queue {made.queue} (FIFO); publishes to {made.topic}; subscribes to {made.topic}")
    assert f"  + create topic {made.topic} (FIFO, max message size 1048576 bytes)" in lines
    assert f"  + create queue {made.dead_letter_queue} (FIFO, dead-letter queue)" in lines
    assert f"  + create queue {made.queue} (FIFO)" in lines
    assert any(line.startswith(f"  + subscribe queue {made.queue} to topic {made.topic} (filter: ") for line in lines)
    assert ORDER_PLACED in planned.stdout
    assert ORDER_SHIPPED in planned.stdout

    applied = run_cli(sns_sqs_endpoint, names, "apply")
    assert applied.returncode == 0, applied.stderr
    checked = run_cli(sns_sqs_endpoint, names, "check")
    assert (checked.returncode, checked.stdout.splitlines()[-1]) == (0, "no drift: the deployment matches the code")
    assert made.queue_attributes(made.queue)["FifoQueue"] == "true"

    # the queue deleted and made again standard, under its FIFO name (only an emulator allows that: see the other test)
    sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=made.queue)["QueueUrl"])
    try:
        sqs.create_queue(QueueName=made.queue)
    except ClientError:
        return  # AWS's behaviour, asserted by test_a_standard_queue_where_the_code_wants_fifo_is_reported_and_refused
    checked = run_cli(sns_sqs_endpoint, names, "check")
    assert checked.returncode == 1
    assert f"  drift fifo: queue {made.queue} is a standard queue, the code wants a FIFO one" in checked.stdout
    refused = run_cli(sns_sqs_endpoint, names, "plan")
    assert refused.returncode == 2
    assert refused.stdout == ""
    *warnings, line = refused.stderr.splitlines()
    assert all(
        warning.startswith("warning: ") for warning in warnings
    )  # the visibility timeout raised: as without FIFO
    assert line.startswith("eventbus topology plan: ConfigurationError: plan cannot make the deployment match the code")
    assert f"queue {made.queue} is a standard queue" in line
    refused = run_cli(sns_sqs_endpoint, names, "apply")
    assert refused.returncode == 2
    assert made.queue_attributes(made.queue).get("FifoQueue", "false") == "false"  # apply changed nothing
