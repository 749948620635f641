"""The AWS adapter: SNS publisher, SQS queue operations, clients from settings, topology (topics, queues, policies).

Needs boto3 (the ``sqs`` extra: ``pip install 'eventbus[sqs]'``).
"""

try:
    import boto3  # noqa: F401  (the adapter's one vendor dependency: fail here, naming the extra)
except ImportError as exc:  # pragma: no cover - exercised in a virtualenv without the extra
    raise ImportError("eventbus's AWS adapter needs boto3: pip install 'eventbus[sqs]'") from exc

from eventbus.adapters.aws.clients import boto_client, sns_client, sqs_client
from eventbus.adapters.aws.sns import SNS_MAX_PAYLOAD_BYTES, SnsPublisher, longest_publish_batch
from eventbus.adapters.aws.sqs import SqsQueues
from eventbus.adapters.aws.topology import AwsTopologyStore, Provisioned, ProvisionedQueue, provision

__all__ = [
    "SNS_MAX_PAYLOAD_BYTES",
    "AwsTopologyStore",
    "Provisioned",
    "ProvisionedQueue",
    "SnsPublisher",
    "SqsQueues",
    "boto_client",
    "longest_publish_batch",
    "provision",
    "sns_client",
    "sqs_client",
]
