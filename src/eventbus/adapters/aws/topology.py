"""The topology on AWS (or any SNS/SQS endpoint): :class:`AwsTopologyStore` reads and changes what a
:class:`~eventbus.core.topology.Topology` names; :func:`provision` creates a topic and queues for tests and the seed.

:class:`AwsTopologyStore` reads without creating anything (``ListTopics``, ``GetQueueUrl``, ``ListSubscriptions``)
and applies each :class:`~eventbus.core.topology.Change` with idempotent calls, resolving the ARNs a plan could not
know (a topic or queue it creates) when it gets to them. Failures raise
:class:`~eventbus.errors.TransportError` with the vendor's exception chained.

A topology with a claim-check bucket needs the store's S3 client: ``HeadBucket`` and
``GetBucketLifecycleConfiguration`` read it; ``CreateBucket`` (in the client's region, a ``LocationConstraint``
outside us-east-1; an existing bucket of ours is kept) and ``PutBucketLifecycleConfiguration`` (the user's rules
kept, eventbus's replaced: :func:`~eventbus.core.topology_documents.merge_lifecycle_rules`) change it.

:func:`provision` works through the boto3 clients it is given, so it runs against real AWS with whatever
credentials those clients carry (build them with :func:`eventbus.adapters.aws.clients.boto_client`, or from settings
with :func:`~eventbus.adapters.aws.clients.sns_client` / :func:`~eventbus.adapters.aws.clients.sqs_client`) as well
as against an emulator.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, cast

from botocore.exceptions import BotoCoreError, ClientError

from eventbus.adapters.aws.failures import NO_QUEUE, error_code, vendor_reason
from eventbus.core.naming import FIFO_SUFFIX
from eventbus.core.topology import (
    Change,
    ChangeKind,
    Deployed,
    DeployedBucket,
    DeployedQueue,
    DeployedSubscription,
    Topology,
    compact_json,
)
from eventbus.core.topology_documents import (
    merge_lifecycle_rules,
    merge_queue_policy,
    redrive_policy,
    subscription_attributes,
)
from eventbus.errors import ConfigurationError, TransportError
from eventbus.ports import TopologyStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType


__all__ = ["AwsTopologyStore", "Provisioned", "ProvisionedQueue", "provision"]

_CALL_ERRORS: Final = (ClientError, BotoCoreError)
#: What S3 answers for a bucket that does not exist (``HeadBucket`` has no body: only the status).
_NO_BUCKET: Final = frozenset({"404", "NoSuchBucket", "NotFound"})
#: What ``CreateBucket`` answers for a bucket that already exists and is ours (elsewhere than us-east-1).
_OURS_ALREADY: Final = "BucketAlreadyOwnedByYou"


@dataclass(frozen=True)
class ProvisionedQueue:
    """A queue subscribed to the topic, and its dead-letter queue."""

    name: str
    url: str
    arn: str
    dead_letter_url: str
    dead_letter_arn: str
    subscription_arn: str


@dataclass(frozen=True)
class Provisioned:
    """What :func:`provision` created (or found)."""

    topic_arn: str
    queues: dict[str, ProvisionedQueue] = field(default_factory=dict)


def _queue(sqs: Any, name: str, attributes: dict[str, str], fifo: bool) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, **_fifo("Queue", fifo))["QueueUrl"]
    if attributes:
        # set separately: create_queue refuses an existing queue whose attributes differ
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def provision(
    sns: SNSClient,
    sqs: SQSClient,
    *,
    topic: str = "local_sns",
    queues: Sequence[str] = ("queue_name",),
    dead_letter_suffix: str = "__dlq",
    max_receive_count: int = 5,
    visibility_timeout: int = 30,
    raw_delivery: bool = False,
    fifo: bool = False,
) -> Provisioned:
    """Create ``topic`` and, for each queue, the queue, its dead-letter queue with a redrive policy, and the
    subscription, through these clients (their region, endpoint and credentials). Safe to call again: existing
    resources are reused and their attributes updated. With ``fifo`` all are FIFO (names ending in ``.fifo``; the
    dead-letter queue of ``Q.fifo`` is ``Q__dlq.fifo``)."""
    topic_arn = sns.create_topic(Name=topic, **_fifo("Topic", fifo))["TopicArn"]
    result: dict[str, ProvisionedQueue] = {}
    for name in queues:
        tail = FIFO_SUFFIX if fifo else ""
        dlq_url, dlq_arn = _queue(sqs, f"{name.removesuffix(tail)}{dead_letter_suffix}{tail}", {}, fifo)
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)})
        attributes = {"VisibilityTimeout": str(visibility_timeout), "RedrivePolicy": redrive}
        url, arn = _queue(sqs, name, attributes, fifo)
        subscription = sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=arn,
            Attributes={"RawMessageDelivery": "true" if raw_delivery else "false"},
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
        result[name] = ProvisionedQueue(name, url, arn, dlq_url, dlq_arn, subscription)
    return Provisioned(topic_arn, result)


class AwsTopologyStore(TopologyStore):
    """:class:`~eventbus.ports.TopologyStore` on SNS and SQS (and S3, for the claim-check bucket), through the boto3
    clients given (their region, endpoint and credentials: boto3's chain, or an emulator's).

    ``s3`` may be left out when no topology read or applied has a claim-check bucket.
    """

    def __init__(self, sns: SNSClient, sqs: SQSClient, s3: S3Client | None = None) -> None:
        self._sns = sns
        self._sqs = sqs
        self._s3 = s3

    def read(self, topology: Topology) -> Deployed:
        """What is deployed of ``topology``; creates nothing.

        Every subscription of the queue is found with ``ListSubscriptions`` (paged, filtered on the queue's ARN): it
        covers the topology's topics and the ones the code no longer uses alike, in one pass.

        Raises:
            TransportError: a call failed.
            ConfigurationError: the topology has a claim-check bucket and the store no S3 client.
        """
        bucket = None
        try:
            if topology.payload_bucket is not None:
                bucket = self._bucket(topology.payload_bucket.name)
            wanted = {*topology.publishes_to, *(subscription.topic for subscription in topology.subscriptions)}
            topics = {name: arn for name, arn in self._topics() if name in wanted}
            queue = self._queue(topology.queue.name)
            dead_letter = self._queue(topology.queue.dead_letter_name)
            subscriptions = self._subscriptions(queue.arn) if queue is not None else ()
            topic_attributes = {
                name: self._sns.get_topic_attributes(TopicArn=arn).get("Attributes", {}) for name, arn in topics.items()
            }
        except _CALL_ERRORS as exc:
            raise TransportError(f"reading the topology failed: {vendor_reason(exc)}") from exc
        return Deployed(topics, queue, dead_letter, subscriptions, topic_attributes, bucket)

    def apply(self, topology: Topology, changes: Sequence[Change]) -> None:
        """Make ``changes`` in order, each with idempotent calls.

        Raises:
            TransportError: a change failed, naming its kind and resource (the ones before it are made).
            ConfigurationError: a bucket change and no S3 client (nothing is made).
        """
        if self._s3 is None and any(change.kind in _BUCKET_KINDS for change in changes):
            raise _no_s3_client()
        run = _Run(self._sns, self._sqs, self._topics, self._s3)
        for change in changes:
            try:
                run.make(change)
            except _CALL_ERRORS as exc:
                raise TransportError(f"{change.kind.value} {change.resource} failed: {vendor_reason(exc)}") from exc

    def _topics(self) -> Iterator[tuple[str, str]]:
        for page in self._sns.get_paginator("list_topics").paginate():
            for topic in page.get("Topics", []):
                arn = topic["TopicArn"]
                yield arn.rsplit(":", 1)[-1], arn

    def _bucket(self, name: str) -> DeployedBucket | None:
        if self._s3 is None:
            raise _no_s3_client()
        try:
            self._s3.head_bucket(Bucket=name)
        except ClientError as exc:
            if error_code(exc) in _NO_BUCKET:
                return None
            raise
        try:
            rules = self._s3.get_bucket_lifecycle_configuration(Bucket=name).get("Rules", [])
        except ClientError as exc:
            if error_code(exc) != "NoSuchLifecycleConfiguration":
                raise
            rules = []
        return DeployedBucket(name, tuple(cast("Mapping[str, Any]", rule) for rule in rules))

    def _queue(self, name: str) -> DeployedQueue | None:
        try:
            url = self._sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except ClientError as exc:
            if error_code(exc) in NO_QUEUE:
                return None
            raise
        found = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]).get("Attributes", {})
        attributes = {str(key): value for key, value in found.items()}
        tags = self._sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
        return DeployedQueue(name, url, attributes["QueueArn"], attributes, dict(tags))

    def _subscriptions(self, queue_arn: str) -> tuple[DeployedSubscription, ...]:
        found = []
        for page in self._sns.get_paginator("list_subscriptions").paginate():
            for subscription in page.get("Subscriptions", []):
                if subscription.get("Protocol") != "sqs" or subscription.get("Endpoint") != queue_arn:
                    continue
                arn = subscription.get("SubscriptionArn", "")
                attributes: Mapping[str, str] = {}
                # "PendingConfirmation" is no ARN: such a subscription has no attributes to read yet
                if arn.startswith("arn:"):
                    attributes = self._sns.get_subscription_attributes(SubscriptionArn=arn).get("Attributes", {})
                topic = subscription.get("TopicArn", "").rsplit(":", 1)[-1]
                found.append(DeployedSubscription(topic, arn, dict(attributes)))
        return tuple(found)


class _Run:
    """One :meth:`AwsTopologyStore.apply`: the changes' calls, and the ARNs and URLs they resolve along the way."""

    def __init__(self, sns: SNSClient, sqs: SQSClient, list_topics: Any, s3: S3Client | None) -> None:
        self._sns = sns
        self._sqs = sqs
        self._s3 = s3
        self._list_topics = list_topics
        self._topic_arns: dict[str, str] | None = None
        self._urls: dict[str, str] = {}
        self._queues: dict[str, tuple[str, str]] = {}

    def make(self, change: Change) -> None:
        """Make one change."""
        name, values = change.resource, change.values
        if change.kind is ChangeKind.CREATE_TOPIC:
            arn = self._sns.create_topic(Name=name, **_fifo("Topic", values.get("fifo", False)))["TopicArn"]
            self._topics()[name] = arn
            _set_topic_attributes(self._sns, arn, {"max_message_bytes": values.get("max_message_bytes")})
        elif change.kind is ChangeKind.SET_TOPIC_ATTRIBUTES:
            _set_topic_attributes(self._sns, self._topics()[name], values)
        elif change.kind is ChangeKind.CREATE_QUEUE:
            # FIFO-ness only (it cannot be set later): CreateQueue refuses an existing queue whose attributes differ
            fifo = _fifo("Queue", values.get("fifo", False))
            self._urls[name] = self._sqs.create_queue(QueueName=name, **fifo)["QueueUrl"]
        elif change.kind is ChangeKind.SET_QUEUE_ATTRIBUTES:
            url, _ = self._queue(name)
            attributes = cast("dict[QueueAttributeNameType, str]", self._queue_attributes(name, values))
            self._sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        elif change.kind is ChangeKind.TAG_QUEUE:
            self._sqs.tag_queue(QueueUrl=self._queue(name)[0], Tags=dict(values["tags"]))
        elif change.kind is ChangeKind.SUBSCRIBE:
            self._sns.subscribe(
                TopicArn=self._topic_arn(name),
                Protocol="sqs",
                Endpoint=self._queue(values["queue"])[1],
                Attributes=dict(subscription_attributes(values, creating=True)),
                ReturnSubscriptionArn=True,
            )
        elif change.kind in _BUCKET_KINDS:
            self._bucket(change)
        elif change.kind is ChangeKind.SET_SUBSCRIPTION_ATTRIBUTES:
            # one call per attribute, in the order subscription_attributes gives: each state on the way is valid
            for attribute, value in subscription_attributes(values, creating=False):
                self._sns.set_subscription_attributes(
                    SubscriptionArn=values["subscription_arn"], AttributeName=attribute, AttributeValue=value
                )
        else:
            try:
                self._sns.unsubscribe(SubscriptionArn=values["subscription_arn"])
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "NotFound":
                    raise

    def _bucket(self, change: Change) -> None:
        s3 = self._s3
        assert s3 is not None  # apply refuses bucket changes without a client
        name = change.resource
        if change.kind is ChangeKind.CREATE_BUCKET:
            region = s3.meta.region_name
            try:
                if region == "us-east-1":  # S3 refuses a LocationConstraint naming its default region
                    s3.create_bucket(Bucket=name)
                else:
                    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})  # type: ignore[typeddict-item]
            except ClientError as exc:
                if error_code(exc) != _OURS_ALREADY:
                    raise
            return
        try:
            current = s3.get_bucket_lifecycle_configuration(Bucket=name).get("Rules", [])
        except ClientError as exc:
            if error_code(exc) != "NoSuchLifecycleConfiguration":
                raise
            current = []
        rules = merge_lifecycle_rules(cast("list[Mapping[str, Any]]", current), int(change.values["expiry_days"]))
        s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})  # type: ignore[typeddict-item]

    def _queue_attributes(self, name: str, values: Mapping[str, Any]) -> dict[str, str]:
        attributes = {
            attribute: _text(values[key])
            for key, attribute in (
                ("visibility_timeout", "VisibilityTimeout"),
                ("max_message_bytes", "MaximumMessageSize"),
                ("retention", "MessageRetentionPeriod"),
                ("content_based_deduplication", "ContentBasedDeduplication"),
            )
            if key in values
        }
        if "redrive" in values:
            redrive = values["redrive"]
            target = self._queue(redrive["dead_letter_queue"])[1]
            attributes["RedrivePolicy"] = compact_json(redrive_policy(target, redrive["max_receive_count"]))
        url, arn = self._queue(name)
        found = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"]).get("Attributes", {})
        if "policy" in values:
            allow = [self._topic_arn(topic) for topic in values["policy"]["allow"]]
            merged = merge_queue_policy(_json(found.get("Policy")), arn, allow, values["policy"]["revoke"])
            # SQS refuses a policy without statements; an empty value removes the policy
            attributes["Policy"] = compact_json(merged) if merged["Statement"] else ""
        elif found.get("Policy"):
            # sent again unchanged: moto (the embedded emulator) drops a policy a SetQueueAttributes call omits
            attributes["Policy"] = found["Policy"]
        return attributes

    def _topics(self) -> dict[str, str]:
        if self._topic_arns is None:
            self._topic_arns = dict(self._list_topics())
        return self._topic_arns

    def _topic_arn(self, name: str) -> str:
        try:
            return self._topics()[name]
        except KeyError:
            raise TransportError(f"topic {name} does not exist (deleted since the plan?): plan again") from None

    def _queue(self, name: str) -> tuple[str, str]:
        """The queue's URL and ARN."""
        if name not in self._queues:
            url = self._urls.get(name) or self._sqs.get_queue_url(QueueName=name)["QueueUrl"]
            found = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            self._queues[name] = (url, found["Attributes"]["QueueArn"])
        return self._queues[name]


_BUCKET_KINDS: Final = (ChangeKind.CREATE_BUCKET, ChangeKind.SET_BUCKET_LIFECYCLE)


def _fifo(kind: str, fifo: bool) -> dict[str, Any]:
    """``CreateTopic`` (``kind`` ``"Topic"``) or ``CreateQueue`` (``"Queue"``) arguments making it FIFO, content-based
    deduplication off; none for a standard one (moto takes any ``FifoTopic`` value given, even "false", as FIFO)."""
    return {"Attributes": {f"Fifo{kind}": "true", "ContentBasedDeduplication": "false"}} if fifo else {}


def _text(value: Any) -> str:
    """An attribute value as AWS spells it (``true``/``false`` for flags)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _no_s3_client() -> ConfigurationError:
    return ConfigurationError(
        "the topology has a claim-check bucket (EVENTBUS_LARGE_PAYLOAD_BUCKET) and this AwsTopologyStore no S3 "
        "client: build it with s3=eventbus.adapters.aws.s3_client(settings)"
    )


def _json(text: str | None) -> dict[str, Any] | None:
    try:
        document = json.loads(text) if text else None
    except ValueError:
        return None  # not a policy: replaced by ours
    return document if isinstance(document, dict) else None


def _set_topic_attributes(sns: SNSClient, arn: str, values: Mapping[str, Any]) -> None:
    """Set a topic's ``MaximumMessageSize`` (SNS's default is 262,144 bytes; up to 1 MiB, for SQS subscriptions) and
    ``ContentBasedDeduplication`` (FIFO topics), those of ``values`` that are given."""
    for key, attribute in (
        ("max_message_bytes", "MaximumMessageSize"),
        ("content_based_deduplication", "ContentBasedDeduplication"),
    ):
        if values.get(key) is not None:
            sns.set_topic_attributes(TopicArn=arn, AttributeName=attribute, AttributeValue=_text(values[key]))
