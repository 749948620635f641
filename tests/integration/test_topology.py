"""AwsTopologyStore against SNS/SQS (the embedded emulator, or LocalStack with ``EVENTBUS_TEST_ENDPOINT_URL``): plan,
apply and check round trip; every drift kind made by hand with boto3, reported, and fixed by the next apply; the
documents as written (the emulators do not enforce the queue policy, so its exact shape is asserted); and SNS honouring
the filter policy end to end.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from eventbus.adapters.aws import AwsTopologyStore
from eventbus.core.topology import (
    Change,
    ChangeKind,
    DriftKind,
    Topology,
    filter_policy,
    topology_of,
)
from eventbus.core.topology_plan import drift, plan
from eventbus.errors import TransportError

pytestmark = pytest.mark.integration

EVENTS = ["orderPlaced", "orderShipped"]
FOREIGN = {"Sid": "audit", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sqs:GetQueueAttributes"}


class Names:
    """The topics and queues one test made: deleted at its end, so a long-lived LocalStack stays small."""

    def __init__(self, sns: Any, sqs: Any, unique: str) -> None:
        self.sns, self.sqs, self.unique = sns, sqs, unique
        self.topics: list[str] = []
        self.queues: list[str] = []

    def topology(self, topic: str = "t", **overrides: Any) -> Topology:
        arguments: dict[str, Any] = {
            "topic": f"topo-{topic}-{self.unique}",
            "queue": f"topo-q-{self.unique}",
            "event_names": EVENTS,
            "tags": {"eventbus:service": "orders", "eventbus:environment": "test"},
        }
        topology = topology_of(**(arguments | overrides))
        self.topics += topology.publishes_to
        self.queues += [topology.queue.name, topology.queue.dead_letter_name]
        return topology

    def topic_arn(self, name: str) -> str:
        return str(self.sns.create_topic(Name=name)["TopicArn"])

    def queue_url(self, name: str) -> str:
        return str(self.sqs.get_queue_url(QueueName=name)["QueueUrl"])

    def queue_attributes(self, name: str) -> dict[str, str]:
        url = self.queue_url(name)
        return dict(self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"])

    def subscription_arn(self, topology: Topology, topic: str | None = None) -> str:
        topic_arn = self.topic_arn(topic or topology.publishes_to[0])
        queue_arn = self.queue_attributes(topology.queue.name)["QueueArn"]
        found = self.sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
        (arn,) = [s["SubscriptionArn"] for s in found if s["Endpoint"] == queue_arn]
        return str(arn)

    def cleanup(self) -> None:
        for topic in dict.fromkeys(self.topics):
            self.sns.delete_topic(TopicArn=self.topic_arn(topic))
        for queue in dict.fromkeys(self.queues):
            with contextlib.suppress(ClientError):  # never created
                self.sqs.delete_queue(QueueUrl=self.queue_url(queue))


@pytest.fixture
def names(sns: Any, sqs: Any, unique: str) -> Iterator[Names]:
    made = Names(sns, sqs, unique)
    yield made
    made.cleanup()


@pytest.fixture
def store(sns: Any, sqs: Any) -> AwsTopologyStore:
    return AwsTopologyStore(sns, sqs)


def deploy(store: AwsTopologyStore, topology: Topology, *, prune: bool = False) -> list[Change]:
    changes = plan(topology, store.read(topology), prune=prune)
    store.apply(topology, changes)
    return changes


def test_read_creates_nothing(store: AwsTopologyStore, names: Names, sns: Any) -> None:
    topology = names.topology()
    deployed = store.read(topology)
    assert (deployed.topics, deployed.queue, deployed.dead_letter_queue, deployed.subscriptions) == ({}, None, None, ())
    arns = [topic["TopicArn"] for topic in sns.list_topics()["Topics"]]
    assert not [arn for arn in arns if arn.endswith(f":{topology.publishes_to[0]}")]
    assert {item.kind for item in drift(topology, deployed)} == {
        DriftKind.MISSING_TOPIC,
        DriftKind.MISSING_QUEUE,
        DriftKind.MISSING_DEAD_LETTER_QUEUE,
        DriftKind.MISSING_SUBSCRIPTION,
    }


def test_plan_apply_check_round_trip_and_a_second_apply_changes_nothing(store: AwsTopologyStore, names: Names) -> None:
    topology = names.topology(handler_time_limits=[60])
    changes = deploy(store, topology)
    assert [change.kind for change in changes] == [
        ChangeKind.CREATE_TOPIC,
        ChangeKind.CREATE_QUEUE,
        ChangeKind.SET_QUEUE_ATTRIBUTES,
        ChangeKind.CREATE_QUEUE,
        ChangeKind.SET_QUEUE_ATTRIBUTES,
        ChangeKind.TAG_QUEUE,
        ChangeKind.TAG_QUEUE,
        ChangeKind.SUBSCRIBE,
    ]
    deployed = store.read(topology)
    assert drift(topology, deployed) == []
    assert plan(topology, deployed) == []
    assert plan(topology, deployed, prune=True) == []
    store.apply(topology, changes)  # the same changes again: every call is idempotent
    assert plan(topology, store.read(topology)) == []
    attributes = names.queue_attributes(topology.queue.name)
    assert attributes["VisibilityTimeout"] == "90"
    assert attributes["MaximumMessageSize"] == "1048576"
    assert names.queue_attributes(topology.queue.dead_letter_name)["MessageRetentionPeriod"] == "1209600"


def test_documents_as_written(store: AwsTopologyStore, names: Names, sns: Any, sqs: Any) -> None:
    topology = names.topology()
    deploy(store, topology)
    topic_arn = names.topic_arn(topology.publishes_to[0])
    attributes = names.queue_attributes(topology.queue.name)
    queue_arn = attributes["QueueArn"]
    assert json.loads(attributes["Policy"]) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": f"eventbus-{topology.publishes_to[0]}",
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }
        ],
    }
    redrive = json.loads(attributes["RedrivePolicy"])
    dead_letter_arn = names.queue_attributes(topology.queue.dead_letter_name)["QueueArn"]
    assert (redrive["deadLetterTargetArn"], int(redrive["maxReceiveCount"])) == (dead_letter_arn, 5)
    subscription = sns.get_subscription_attributes(SubscriptionArn=names.subscription_arn(topology))["Attributes"]
    assert json.loads(subscription["FilterPolicy"]) == {"metadata": {"eventName": EVENTS}}
    assert subscription["FilterPolicyScope"] == "MessageBody"
    assert subscription["RawMessageDelivery"] == "false"
    tags = sqs.list_queue_tags(QueueUrl=names.queue_url(topology.queue.name))["Tags"]
    assert tags == {"eventbus:service": "orders", "eventbus:environment": "test"}


def _set_subscription(names: Names, topology: Topology, attribute: str, value: str) -> None:
    arn = names.subscription_arn(topology)
    names.sns.set_subscription_attributes(SubscriptionArn=arn, AttributeName=attribute, AttributeValue=value)


def _set_queue(names: Names, topology: Topology, attribute: str, value: str) -> None:
    # the policy is sent along: moto drops a queue policy a SetQueueAttributes call omits (AWS keeps it)
    policy = names.queue_attributes(topology.queue.name).get("Policy", "")
    attributes = {"Policy": policy, attribute: value}
    names.sqs.set_queue_attributes(QueueUrl=names.queue_url(topology.queue.name), Attributes=attributes)


def _foreign_policy_only(names: Names, topology: Topology) -> None:
    _set_queue(names, topology, "Policy", json.dumps({"Version": "2012-10-17", "Statement": [FOREIGN]}))


DRIFTS: dict[str, tuple[Callable[[Names, Topology], None], DriftKind, str]] = {
    "filter-policy": (
        lambda n, t: _set_subscription(
            n, t, "FilterPolicy", json.dumps(filter_policy(["orderPlaced", "orderCancelled"]))
        ),
        DriftKind.FILTER_POLICY,
        "missing event names (SNS drops them): orderShipped; extra event names (delivered, no handler): orderCancelled",
    ),
    "raw-delivery": (
        lambda n, t: _set_subscription(n, t, "RawMessageDelivery", "true"),
        DriftKind.RAW_DELIVERY,
        "has raw delivery on, the code chooses off",
    ),
    "redrive": (
        lambda n, t: _set_queue(n, t, "RedrivePolicy", ""),
        DriftKind.REDRIVE,
        "has no redrive policy",
    ),
    "visibility": (
        lambda n, t: _set_queue(n, t, "VisibilityTimeout", "5"),
        DriftKind.VISIBILITY,
        "visibility timeout of 5 s, shorter than the longest handler time limit plus 30 s (90 s)",
    ),
    "queue-policy": (
        _foreign_policy_only,
        DriftKind.QUEUE_POLICY,
        "does not let topic topo-t-",
    ),
}


@pytest.mark.parametrize("case", list(DRIFTS))
def test_a_drift_made_by_hand_is_reported_and_fixed_by_apply(store: AwsTopologyStore, names: Names, case: str) -> None:
    make, kind, detail = DRIFTS[case]
    topology = names.topology(handler_time_limits=[60])
    deploy(store, topology)
    make(names, topology)
    found = drift(topology, store.read(topology))
    assert [item.kind for item in found] == [kind], found
    assert detail in found[0].detail
    assert topology.queue.name in found[0].detail
    (change,) = deploy(store, topology)
    deployed = store.read(topology)
    assert drift(topology, deployed) == [], change
    assert plan(topology, deployed) == []
    if case == "queue-policy":  # the user's own statement is kept
        assert deployed.queue is not None
        assert FOREIGN in json.loads(deployed.queue.attributes["Policy"])["Statement"]


def test_an_extra_subscription_is_reported_and_only_prune_removes_it(
    store: AwsTopologyStore, names: Names, sns: Any
) -> None:
    topology = names.topology()
    deploy(store, topology)
    other = names.topology(topic="old")  # same queue, another topic: the code "no longer uses" it
    other_arn = names.topic_arn(other.publishes_to[0])
    queue_arn = names.queue_attributes(topology.queue.name)["QueueArn"]
    sns.subscribe(TopicArn=other_arn, Protocol="sqs", Endpoint=queue_arn, ReturnSubscriptionArn=True)
    (found,) = drift(topology, store.read(topology))
    assert found.kind is DriftKind.EXTRA_SUBSCRIPTION
    assert f"subscribed to topic {other.publishes_to[0]}, which the code no longer uses" in found.detail
    assert plan(topology, store.read(topology)) == []  # nothing is deleted unless asked
    (change,) = deploy(store, topology, prune=True)
    assert change.kind is ChangeKind.UNSUBSCRIBE
    assert sns.list_subscriptions_by_topic(TopicArn=other_arn)["Subscriptions"] == []
    assert drift(topology, store.read(topology)) == []


def test_removing_the_filter_policy(store: AwsTopologyStore, names: Names) -> None:
    deploy(store, names.topology())
    every_event = names.topology(event_names=None)
    (change,) = deploy(store, every_event)
    assert str(change).endswith("no filter: every event")
    assert drift(every_event, store.read(every_event)) == []


def _event(name: str) -> str:
    return json.dumps({"metadata": {"eventName": name, "eventId": name}, "payload": {}})


def _received(sqs: Any, url: str, deadline: float) -> list[str]:
    """Event names received until ``deadline`` or an empty short poll after the first message."""
    names: list[str] = []
    while time.monotonic() < deadline:
        wait = 1 if names else 2
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait).get("Messages", [])
        if not messages and names:
            break
        for message in messages:
            body = json.loads(json.loads(message["Body"])["Message"])  # the SNS wrapper (raw delivery off)
            names.append(body["metadata"]["eventName"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return names


def test_sns_honours_the_filter_policy(store: AwsTopologyStore, names: Names, sns: Any, sqs: Any) -> None:
    topology = names.topology(event_names=["orderPlaced"])
    deploy(store, topology)
    topic_arn = names.topic_arn(topology.publishes_to[0])
    sns.publish(TopicArn=topic_arn, Message=_event("orderShipped"))
    sns.publish(TopicArn=topic_arn, Message=_event("orderPlaced"))
    assert _received(sqs, names.queue_url(topology.queue.name), time.monotonic() + 8) == ["orderPlaced"]


def test_a_failed_call_raises_transport_error_naming_the_change(store: AwsTopologyStore, names: Names) -> None:
    topology = names.topology()
    missing = Change(ChangeKind.TAG_QUEUE, f"topo-missing-{names.unique}", {"tags": {"a": "b"}})
    with pytest.raises(TransportError, match=f"^tag-queue topo-missing-{names.unique} failed") as raised:
        store.apply(topology, [missing])
    assert isinstance(raised.value.__cause__, ClientError)
