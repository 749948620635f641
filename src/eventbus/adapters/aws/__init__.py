"""The AWS adapter: SNS publisher, SQS queue operations, S3 payload store (claim-checks), clients from settings,
topology (topics, queues, policies).

Needs boto3 (the ``sqs`` extra: ``pip install 'eventbus[sqs]'``). The names load on first use: importing one module
of the adapter (the Celery runtime imports :mod:`.sqs`) does not import boto3 and every other module with it.
"""

from __future__ import annotations

import importlib
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

if find_spec("boto3") is None:  # fail here, naming the extra, not with a bare ModuleNotFoundError later
    raise ImportError("eventbus's AWS adapter needs boto3: pip install 'eventbus[sqs]'")

if TYPE_CHECKING:
    from eventbus.adapters.aws.clients import boto_client, s3_client, sns_client, sqs_client
    from eventbus.adapters.aws.inspection import QueueFacts, QueueInspector
    from eventbus.adapters.aws.s3 import S3PayloadStore
    from eventbus.adapters.aws.sns import SNS_MAX_PAYLOAD_BYTES, SnsPublisher, longest_publish_batch, sns_delivered_size
    from eventbus.adapters.aws.sqs import SqsQueues
    from eventbus.adapters.aws.topology import AwsTopologyStore, Provisioned, ProvisionedQueue, provision

__all__ = [
    "SNS_MAX_PAYLOAD_BYTES",
    "AwsTopologyStore",
    "Provisioned",
    "ProvisionedQueue",
    "QueueFacts",
    "QueueInspector",
    "S3PayloadStore",
    "SnsPublisher",
    "SqsQueues",
    "boto_client",
    "longest_publish_batch",
    "provision",
    "s3_client",
    "sns_client",
    "sns_delivered_size",
    "sqs_client",
]

_MODULE_OF = {
    "SNS_MAX_PAYLOAD_BYTES": "sns",
    "AwsTopologyStore": "topology",
    "Provisioned": "topology",
    "ProvisionedQueue": "topology",
    "QueueFacts": "inspection",
    "QueueInspector": "inspection",
    "S3PayloadStore": "s3",
    "SnsPublisher": "sns",
    "SqsQueues": "sqs",
    "boto_client": "clients",
    "longest_publish_batch": "sns",
    "provision": "topology",
    "s3_client": "clients",
    "sns_client": "clients",
    "sns_delivered_size": "sns",
    "sqs_client": "clients",
}


def __getattr__(name: str) -> Any:
    """The adapter's public names, imported from their module on first use."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
