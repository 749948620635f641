"""Read-only look-ups a worker makes before it consumes: does a queue exist, has it a redrive policy, is it FIFO, is it
subscribed to a topic, which queues have a similar name. Nothing here creates or changes anything.

Each call is bounded (:data:`CONNECT_TIMEOUT`, :data:`READ_TIMEOUT`, :data:`MAX_ATTEMPTS`), so an unreachable endpoint
costs seconds, not the minutes of botocore's defaults. A failed call (no permission, an SQS error, no connection)
raises :class:`~eventbus.errors.TransportError` with the vendor's words, for the caller to report as "could not
check", never as the answer to the question.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from eventbus.adapters.aws.failures import NO_QUEUE, error_code, vendor_reason
from eventbus.errors import TransportError

if TYPE_CHECKING:
    from eventbus.settings import EventBusSettings

__all__ = ["CONNECT_TIMEOUT", "MAX_ATTEMPTS", "READ_TIMEOUT", "QueueFacts", "QueueInspector"]

#: Seconds to wait for a connection, for each read, and calls per look-up (the first included).
CONNECT_TIMEOUT: Final = 2.0
READ_TIMEOUT: Final = 5.0
MAX_ATTEMPTS: Final = 2
_NO_TOPIC: Final = frozenset({"NotFound", "NotFoundException"})


@dataclass(frozen=True)
class QueueFacts:
    """What SQS says of an existing queue."""

    name: str
    url: str
    arn: str
    #: The queue's ``RedrivePolicy`` attribute (empty: no dead-letter queue).
    redrive_policy: str
    #: A FIFO queue (``FifoQueue``; a standard queue has none).
    fifo: bool = False


class QueueInspector:
    """Read-only SQS and SNS look-ups through the clients given (see :meth:`from_settings`)."""

    def __init__(self, sqs: Any, sns: Any) -> None:
        self._sqs = sqs
        self._sns = sns

    @classmethod
    def from_settings(cls, settings: EventBusSettings) -> QueueInspector:
        """Clients for these settings (endpoint, region, credentials) with short timeouts and few attempts."""
        from botocore.config import Config

        from eventbus.adapters.aws.clients import boto_client

        config = Config(
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
        )
        key, secret = settings.secret_pair()
        clients = [
            boto_client(
                service,
                region=settings.region,
                endpoint_url=endpoint,
                access_key_id=key,
                secret_access_key=secret,
                config=config,
            )
            for service, endpoint in (("sqs", settings.endpoint_url), ("sns", settings.sns_endpoint()))
        ]
        return cls(*clients)

    def queue(self, name: str) -> QueueFacts | None:
        """The queue named ``name``; ``None`` when it does not exist.

        Raises:
            TransportError: it could not be read (no permission, an error, no connection).
        """
        try:
            try:
                url = self._sqs.get_queue_url(QueueName=name)["QueueUrl"]
            except ClientError as exc:
                if error_code(exc) in NO_QUEUE:
                    return None
                raise
            names = ["QueueArn", "RedrivePolicy", "FifoQueue"]
            attributes = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names).get("Attributes", {})
        except (ClientError, BotoCoreError) as exc:
            raise TransportError(vendor_reason(exc)) from exc
        fifo = attributes.get("FifoQueue", "false").lower() == "true"
        return QueueFacts(name, url, attributes.get("QueueArn", ""), attributes.get("RedrivePolicy", ""), fifo)

    def names_like(self, prefix: str, limit: int = 100) -> list[str]:
        """Names of the queues starting with ``prefix`` (one ``ListQueues`` call, at most ``limit``).

        Raises:
            TransportError: they could not be listed.
        """
        try:
            urls = self._sqs.list_queues(QueueNamePrefix=prefix, MaxResults=limit).get("QueueUrls", [])
        except (ClientError, BotoCoreError) as exc:
            raise TransportError(vendor_reason(exc)) from exc
        return [str(url).rsplit("/", 1)[-1] for url in urls]

    def subscribed(self, topic_arn: str, queue_arn: str) -> bool | None:
        """Whether the topic has an SQS subscription delivering to ``queue_arn``; ``None``: the topic does not exist.

        Raises:
            TransportError: the subscriptions could not be listed.
        """
        try:
            for page in self._sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
                for subscription in page.get("Subscriptions", []):
                    if subscription.get("Protocol") == "sqs" and subscription.get("Endpoint") == queue_arn:
                        return True
        except ClientError as exc:
            if error_code(exc) in _NO_TOPIC:
                return None
            raise TransportError(vendor_reason(exc)) from exc
        except BotoCoreError as exc:
            raise TransportError(vendor_reason(exc)) from exc
        return False
