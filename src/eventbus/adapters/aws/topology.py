"""Create a topic, queues with dead-letter queues, and the subscriptions: idempotent, on AWS or any SNS/SQS endpoint.

:func:`provision` works through the boto3 clients it is given, so it runs against real AWS with whatever
credentials those clients carry (build them with :func:`eventbus.adapters.aws.clients.boto_client`, or from settings
with :func:`~eventbus.adapters.aws.clients.sns_client` / :func:`~eventbus.adapters.aws.clients.sqs_client`) as well
as against an emulator.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient


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


def _queue(sqs: Any, name: str, attributes: dict[str, str]) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
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
) -> Provisioned:
    """Create ``topic`` and, for each queue, the queue, its dead-letter queue with a redrive policy, and the
    subscription, through these clients (their region, endpoint and credentials). Safe to call again: existing
    resources are reused and their attributes updated."""
    topic_arn = sns.create_topic(Name=topic)["TopicArn"]
    result: dict[str, ProvisionedQueue] = {}
    for name in queues:
        dlq_url, dlq_arn = _queue(sqs, f"{name}{dead_letter_suffix}", {})
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)})
        url, arn = _queue(sqs, name, {"VisibilityTimeout": str(visibility_timeout), "RedrivePolicy": redrive})
        subscription = sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=arn,
            Attributes={"RawMessageDelivery": "true" if raw_delivery else "false"},
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
        result[name] = ProvisionedQueue(name, url, arn, dlq_url, dlq_arn, subscription)
    return Provisioned(topic_arn, result)
