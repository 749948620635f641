"""The claim-check topology on the embedded emulator (or LocalStack with ``EVENTBUS_TEST_ENDPOINT_URL``; S3 from the
``s3_endpoint`` fixture): apply makes the bucket (in the region, with a ``LocationConstraint``) and its expiry rule,
keeps the user's lifecycle rules, and check is clean after it; a subscription filtering on the body is moved to the
``eventName`` attribute and back; and SNS, with that filter, delivers a pointer-shaped message whose attribute names a
subscribed event and drops one whose attribute names another.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from eventbus.adapters.aws import AwsTopologyStore
from eventbus.core.claim_check import SIZE_ATTRIBUTE, Pointer, size_attribute
from eventbus.core.topology import EXPIRY_RULE_ID, Change, ChangeKind, DriftKind, Topology, topology_of
from eventbus.core.topology_plan import drift, plan
from eventbus.errors import ConfigurationError
from tests.conftest import REGION, s3_client

pytestmark = pytest.mark.integration

EVENTS = ["orderPlaced", "orderShipped"]
USER_RULE = {"ID": "reports", "Status": "Enabled", "Filter": {"Prefix": "reports/"}, "Expiration": {"Days": 400}}


class Names:
    """The topic, queues and bucket one test made: deleted at its end."""

    def __init__(self, sns: Any, sqs: Any, s3: Any, unique: str) -> None:
        self.sns, self.sqs, self.s3, self.unique = sns, sqs, s3, unique
        self.topic = f"topo-cc-{unique}"
        self.queue = f"topo-cc-q-{unique}"
        self.bucket = f"topo-cc-{unique}"

    def topology(self, *, bucket: bool = True, **overrides: Any) -> Topology:
        arguments: dict[str, Any] = {
            "topic": self.topic,
            "queue": self.queue,
            "event_names": EVENTS,
            "payload_bucket": self.bucket if bucket else None,
        }
        return topology_of(**(arguments | overrides))

    def topic_arn(self) -> str:
        return str(self.sns.create_topic(Name=self.topic)["TopicArn"])

    def queue_url(self, name: str | None = None) -> str:
        return str(self.sqs.get_queue_url(QueueName=name or self.queue)["QueueUrl"])

    def subscription_attributes(self) -> dict[str, str]:
        (subscription,) = self.sns.list_subscriptions_by_topic(TopicArn=self.topic_arn())["Subscriptions"]
        arn = subscription["SubscriptionArn"]
        return dict(self.sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"])

    def cleanup(self) -> None:
        self.sns.delete_topic(TopicArn=self.topic_arn())
        for queue in (self.queue, f"{self.queue}__dlq"):
            with contextlib.suppress(ClientError):  # never created
                self.sqs.delete_queue(QueueUrl=self.queue_url(queue))
        with contextlib.suppress(ClientError):
            self.s3.delete_bucket(Bucket=self.bucket)


@pytest.fixture(scope="module")
def s3(s3_endpoint: str) -> Any:
    return s3_client(s3_endpoint)


@pytest.fixture
def names(sns: Any, sqs: Any, s3: Any, unique: str) -> Iterator[Names]:
    made = Names(sns, sqs, s3, unique)
    yield made
    made.cleanup()


@pytest.fixture
def store(sns: Any, sqs: Any, s3: Any) -> AwsTopologyStore:
    return AwsTopologyStore(sns, sqs, s3)


def deploy(store: AwsTopologyStore, topology: Topology) -> list[ChangeKind]:
    changes = plan(topology, store.read(topology))
    store.apply(topology, changes)
    return [change.kind for change in changes]


def test_apply_makes_the_bucket_and_its_rule_then_check_is_clean(
    store: AwsTopologyStore, names: Names, s3: Any
) -> None:
    topology = names.topology()
    assert {item.kind for item in drift(topology, store.read(topology))} >= {DriftKind.MISSING_BUCKET}
    assert deploy(store, topology)[:2] == [ChangeKind.CREATE_BUCKET, ChangeKind.SET_BUCKET_LIFECYCLE]
    assert drift(topology, store.read(topology)) == []
    assert plan(topology, store.read(topology)) == []
    assert s3.get_bucket_location(Bucket=names.bucket)["LocationConstraint"] == REGION
    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=names.bucket)["Rules"]
    assert (rule["ID"], rule["Status"], rule["Expiration"]) == (EXPIRY_RULE_ID, "Enabled", {"Days": 15})
    # a plan made before another apply created the bucket: creating it again is no error
    store.apply(topology, [Change(ChangeKind.CREATE_BUCKET, names.bucket)])
    assert drift(topology, store.read(topology)) == []


def test_a_changed_expiry_rewrites_our_rule_and_keeps_the_users(store: AwsTopologyStore, names: Names, s3: Any) -> None:
    deploy(store, names.topology())
    rules = s3.get_bucket_lifecycle_configuration(Bucket=names.bucket)["Rules"]
    s3.put_bucket_lifecycle_configuration(Bucket=names.bucket, LifecycleConfiguration={"Rules": [USER_RULE, *rules]})
    longer = names.topology(payload_expiry_days=30)
    (item,) = drift(longer, store.read(longer))
    assert (
        item.kind,
        item.detail.endswith("expires objects after 15 days, the code after 30 (EVENTBUS_LARGE_PAYLOAD_EXPIRY_DAYS)"),
    ) == (DriftKind.BUCKET_LIFECYCLE, True)
    assert deploy(store, longer) == [ChangeKind.SET_BUCKET_LIFECYCLE]
    found = {rule["ID"]: rule for rule in s3.get_bucket_lifecycle_configuration(Bucket=names.bucket)["Rules"]}
    assert found.keys() == {"reports", EXPIRY_RULE_ID}
    assert (found["reports"]["Expiration"], found[EXPIRY_RULE_ID]["Expiration"]) == ({"Days": 400}, {"Days": 30})
    assert drift(longer, store.read(longer)) == []


def test_a_store_without_an_s3_client_refuses_a_topology_with_a_bucket(sns: Any, sqs: Any, names: Names) -> None:
    with pytest.raises(ConfigurationError, match="no S3 client"):
        AwsTopologyStore(sns, sqs).read(names.topology())
    with pytest.raises(ConfigurationError, match="no S3 client"):
        AwsTopologyStore(sns, sqs).apply(names.topology(), [Change(ChangeKind.CREATE_BUCKET, names.bucket)])


def _pointer(names: Names, event_name: str) -> dict[str, Any]:
    """What the eventbus SNS publisher sends for a claim-checked event: the pointer body, its size and event name."""
    return {
        "Message": Pointer(names.bucket, f"key-{event_name}").to_json(),
        "MessageAttributes": {
            "eventName": {"DataType": "String", "StringValue": event_name},
            SIZE_ATTRIBUTE: size_attribute(300_000),
        },
    }


def _received(sqs: Any, url: str) -> list[str]:
    """The event-name attributes of the notifications on the queue, polled until one poll finds nothing."""
    found: list[str] = []
    for _ in range(10):
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        if not messages:
            break
        for message in messages:
            notification = json.loads(message["Body"])  # the SNS wrapper: raw delivery off
            found.append(notification["MessageAttributes"]["eventName"]["Value"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def test_a_body_filter_moves_to_the_event_name_attribute_and_routes_pointers(
    store: AwsTopologyStore, names: Names, sns: Any, sqs: Any
) -> None:
    before = names.topology(bucket=False)
    deploy(store, before)
    assert names.subscription_attributes()["FilterPolicyScope"] == "MessageBody"
    topology = names.topology()
    found = {item.kind: item.detail for item in drift(topology, store.read(topology))}
    assert found.keys() == {DriftKind.MISSING_BUCKET, DriftKind.FILTER_POLICY}
    assert "filters on MessageBody, the code on MessageAttributes" in found[DriftKind.FILTER_POLICY]
    assert deploy(store, topology) == [
        ChangeKind.CREATE_BUCKET,
        ChangeKind.SET_BUCKET_LIFECYCLE,
        ChangeKind.SET_SUBSCRIPTION_ATTRIBUTES,
    ]
    attributes = names.subscription_attributes()
    assert attributes["FilterPolicyScope"] == "MessageAttributes"
    assert json.loads(attributes["FilterPolicy"]) == {"eventName": EVENTS}
    assert drift(topology, store.read(topology)) == []

    topic_arn = names.topic_arn()
    sns.publish(TopicArn=topic_arn, **_pointer(names, "orderCancelled"))  # no handler: SNS drops it
    sns.publish(TopicArn=topic_arn, **_pointer(names, "orderPlaced"))
    assert _received(sqs, names.queue_url()) == ["orderPlaced"]

    # and back, once claim-check is off: the scope goes to the body before the nested policy is set
    assert deploy(store, before) == [ChangeKind.SET_SUBSCRIPTION_ATTRIBUTES]
    attributes = names.subscription_attributes()
    assert attributes["FilterPolicyScope"] == "MessageBody"
    assert json.loads(attributes["FilterPolicy"]) == {"metadata": {"eventName": EVENTS}}
    assert drift(before, store.read(before)) == []
