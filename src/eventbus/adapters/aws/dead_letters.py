"""The SQS and SNS calls of ``eventbus dlq`` and ``eventbus tail``: find a dead-letter queue, read it without consuming,
send a dead letter back, and a temporary queue subscribed to a topic.

A failed call raises :class:`~eventbus.errors.TransportError` with the vendor's words (never a message body), the
vendor's exception chained; a queue or topic that does not exist raises :class:`~eventbus.errors.ConfigurationError`
naming it. Clients are passed in (``sqs_client(settings)``, ``sns_client(settings)``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from eventbus.adapters.aws.failures import NO_QUEUE, REASON_LIMIT, error_code
from eventbus.core.dead_letters import REASON_ATTRIBUTE, REDRIVEN_REASON_ATTRIBUTE, DeadLetter
from eventbus.core.topology import queue_policy, topic_name_of
from eventbus.errors import ConfigurationError, TransportError

__all__ = [
    "DEAD_LETTER_SUFFIX",
    "DeadLetterQueues",
    "Received",
    "ResolvedQueues",
    "TemporarySubscription",
    "dead_letter_name",
    "find_topic",
    "redrive_attributes",
    "refused_by_sqs",
    "source_name",
]

#: The dead-letter queue of queue ``Q`` is ``Q__dlq`` (``Q__dlq.fifo`` for ``Q.fifo``), as the topology makes it.
DEAD_LETTER_SUFFIX: Final = "__dlq"
_FIFO: Final = ".fifo"
#: SQS's limit of message attributes per message.
_MAX_ATTRIBUTES: Final = 10

_T = TypeVar("_T")


def _call(call: Callable[[], _T]) -> _T:
    try:
        return call()
    except (ClientError, BotoCoreError, OSError) as exc:
        raise TransportError(str(exc)[:REASON_LIMIT]) from exc


def refused_by_sqs(exc: TransportError) -> bool:
    """True when SQS answered the call with an error (nothing was done), rather than the call failing on its way
    (timeout, connection lost: it may have been done)."""
    return isinstance(exc.__cause__, ClientError)


def dead_letter_name(queue: str) -> str:
    """``Q`` -> ``Q__dlq``; ``Q.fifo`` -> ``Q__dlq.fifo``."""
    if queue.endswith(_FIFO):
        return f"{queue.removesuffix(_FIFO)}{DEAD_LETTER_SUFFIX}{_FIFO}"
    return f"{queue}{DEAD_LETTER_SUFFIX}"


def source_name(dead_letter_queue: str) -> str | None:
    """``Q__dlq`` -> ``Q`` (``None``: not a dead-letter queue's name)."""
    fifo = dead_letter_queue.endswith(_FIFO)
    base = dead_letter_queue.removesuffix(_FIFO) if fifo else dead_letter_queue
    if not base.endswith(DEAD_LETTER_SUFFIX) or base == DEAD_LETTER_SUFFIX:
        return None
    return base.removesuffix(DEAD_LETTER_SUFFIX) + (_FIFO if fifo else "")


@dataclass(frozen=True, slots=True)
class ResolvedQueues:
    """A queue named on the command line, resolved: its dead-letter queue and the queue that one belongs to."""

    source: str
    #: ``None`` when the source queue no longer exists (``--to`` must name where to redrive).
    source_url: str | None
    dead_letter: str
    dead_letter_url: str
    #: How it was resolved, in words, for stderr.
    note: str


@dataclass(frozen=True, slots=True)
class Received:
    """A dead letter as received: the letter, and what SQS needs to act on it."""

    letter: DeadLetter
    receipt_handle: str
    group_id: str | None
    deduplication_id: str | None


def redrive_attributes(letter: DeadLetter, keep_reason: bool = True) -> dict[str, dict[str, Any]]:
    """The message attributes a redriven message carries: the dead letter's, ``eventbus-reason`` turned into
    ``eventbus-redriven-reason`` (dropped with ``keep_reason=False``, or when SQS's limit of 10 would be passed)."""
    kept: dict[str, dict[str, Any]] = {}
    for name, value in letter.message_attributes.items():
        if name == REASON_ATTRIBUTE:
            continue
        # SQS returns empty list fields it refuses on send
        kept[name] = {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
    if keep_reason and letter.reason and len(kept) < _MAX_ATTRIBUTES:
        kept[REDRIVEN_REASON_ATTRIBUTE] = {"DataType": "String", "StringValue": letter.reason}
    return kept


class DeadLetterQueues:
    """Dead-letter queue operations with one SQS client."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs

    def queue_url(self, name: str) -> str | None:
        """The URL of queue ``name``; ``None`` when it does not exist.

        Raises:
            TransportError: SQS could not be asked.
        """
        try:
            return str(self._sqs.get_queue_url(QueueName=name)["QueueUrl"])
        except ClientError as exc:
            if error_code(exc) in NO_QUEUE:
                return None
            raise TransportError(str(exc)[:REASON_LIMIT]) from exc
        except (BotoCoreError, OSError) as exc:
            raise TransportError(str(exc)[:REASON_LIMIT]) from exc

    def resolve(self, name: str) -> ResolvedQueues:
        """Resolve ``name``: a source queue (its redrive policy names its dead-letter queue, else ``name__dlq``) or a
        dead-letter queue itself (``Q__dlq``: its source is ``Q``).

        Raises:
            ConfigurationError: no such queue, or no dead-letter queue for it.
            TransportError: SQS could not be asked.
        """
        url = self.queue_url(name)
        if url is None:
            raise ConfigurationError(f"queue {name!r} not found (check the name, EVENTBUS_REGION and the endpoint)")
        source = source_name(name)
        if source is not None:
            return ResolvedQueues(
                source, self.queue_url(source), name, url, f"{name} is a dead-letter queue; its source is {source}"
            )
        policy = self._attributes(url, "RedrivePolicy").get("RedrivePolicy")
        if policy:
            target = topic_name_of(str(json.loads(policy)["deadLetterTargetArn"]))
            target_url = self.queue_url(target)
            if target_url is not None:
                return ResolvedQueues(name, url, target, target_url, f"dead-letter queue of {name}: {target}")
        conventional = dead_letter_name(name)
        target_url = self.queue_url(conventional)
        if target_url is None:
            raise ConfigurationError(f"queue {name!r} has no dead-letter queue (no redrive policy, no {conventional})")
        return ResolvedQueues(name, url, conventional, target_url, f"dead-letter queue of {name}: {conventional}")

    def approximate_count(self, url: str) -> int:
        """``ApproximateNumberOfMessages`` of the queue (visible messages).

        Raises:
            TransportError: the call failed.
        """
        return int(self._attributes(url, "ApproximateNumberOfMessages").get("ApproximateNumberOfMessages", 0))

    def receive(self, url: str, visibility: int, wait: int = 1) -> list[Received]:
        """Up to 10 messages, each invisible for ``visibility`` seconds (``wait``: seconds of long polling).

        Raises:
            TransportError: the call failed.
        """
        response = _call(
            lambda: self._sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=visibility,
                WaitTimeSeconds=wait,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
        )
        return [_received(message) for message in response.get("Messages", [])]

    def release(self, url: str, receipt_handles: Sequence[str]) -> int:
        """Make these messages visible again now; return how many SQS refused (they reappear at their timeout).

        Raises:
            TransportError: a call failed as a whole.
        """
        refused = 0
        for start in range(0, len(receipt_handles), 10):
            entries = [
                {"Id": str(n), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for n, handle in enumerate(receipt_handles[start : start + 10])
            ]
            response = _call(partial(self._sqs.change_message_visibility_batch, QueueUrl=url, Entries=entries))
            refused += len(response.get("Failed", []))
        return refused

    def send_back(self, url: str, received: Received, *, fifo: bool, keep_reason: bool = True) -> str:
        """Send the dead letter's body, unchanged, to the queue at ``url``; return the new message's id.

        Message attributes per :func:`redrive_attributes`; a FIFO target gets the letter's group id and deduplication
        id (a letter without a group id goes to group ``eventbus-redrive``, deduplicated by its message id).

        Raises:
            TransportError: SQS did not take it.
        """
        letter = received.letter
        arguments: dict[str, Any] = {"QueueUrl": url, "MessageBody": letter.body}
        attributes = redrive_attributes(letter, keep_reason)
        if attributes:
            arguments["MessageAttributes"] = attributes
        if fifo:
            arguments["MessageGroupId"] = received.group_id or "eventbus-redrive"
            arguments["MessageDeduplicationId"] = received.deduplication_id or letter.message_id
        return str(_call(lambda: self._sqs.send_message(**arguments))["MessageId"])

    def delete(self, url: str, receipt_handle: str) -> None:
        """Delete one received message.

        Raises:
            TransportError: the call failed.
        """
        _call(lambda: self._sqs.delete_message(QueueUrl=url, ReceiptHandle=receipt_handle))

    def invisible_count(self, url: str) -> int:
        """``ApproximateNumberOfMessagesNotVisible``: messages some consumer holds now.

        Raises:
            TransportError: the call failed.
        """
        name = "ApproximateNumberOfMessagesNotVisible"
        return int(self._attributes(url, name).get(name, 0))

    def _attributes(self, url: str, *names: str) -> dict[str, str]:
        response = _call(lambda: self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(names)))
        return dict(response.get("Attributes", {}))


def _received(message: Mapping[str, Any]) -> Received:
    system: Mapping[str, str] = message.get("Attributes", {})
    sent = system.get("SentTimestamp")
    count = system.get("ApproximateReceiveCount")
    letter = DeadLetter(
        message_id=str(message["MessageId"]),
        body=str(message.get("Body", "")),
        message_attributes=dict(message.get("MessageAttributes", {})),
        # the count includes this receive, which is not a delivery to a consumer
        receive_count=max(int(count) - 1, 0) if count and count.isdigit() else None,
        sent_at=datetime.fromtimestamp(int(sent) / 1000, UTC) if sent and sent.isdigit() else None,
    )
    return Received(
        letter, str(message["ReceiptHandle"]), system.get("MessageGroupId"), system.get("MessageDeduplicationId")
    )


def find_topic(sns: Any, topic: str) -> str:
    """The ARN of ``topic`` (a name or an ARN) if it exists; never creates one.

    Raises:
        ConfigurationError: no such topic.
        TransportError: SNS could not be asked.
    """
    if topic.startswith("arn:"):
        try:
            sns.get_topic_attributes(TopicArn=topic)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NotFound", "NotFoundException", "InvalidParameter"):
                raise ConfigurationError(f"topic {topic!r} not found") from None
            raise TransportError(str(exc)[:REASON_LIMIT]) from exc
        except (BotoCoreError, OSError) as exc:
            raise TransportError(str(exc)[:REASON_LIMIT]) from exc
        return topic
    for arn in _topic_arns(sns):
        if topic_name_of(arn) == topic:
            return arn
    raise ConfigurationError(f"topic {topic!r} not found (check EVENTBUS_TOPIC / --topic, the region and the endpoint)")


def _topic_arns(sns: Any) -> Iterator[str]:
    token: str | None = None
    while True:
        kwargs = {"NextToken": token} if token else {}
        response = _call(partial(sns.list_topics, **kwargs))
        for item in response.get("Topics", []):
            yield str(item["TopicArn"])
        token = response.get("NextToken")
        if not token:
            return


class TemporarySubscription:
    """A queue of its own subscribed to a topic (raw delivery; a queue policy allowing only that topic), removed by
    :meth:`close` (also when it was only half made). Use as a context manager."""

    def __init__(self, sns: Any, sqs: Any, topic_arn: str, prefix: str = "eventbus-tail") -> None:
        self._sns = sns
        self._sqs = sqs
        self.topic_arn = topic_arn
        self.queue_name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.queue_url: str | None = None
        self.subscription_arn: str | None = None

    def open(self) -> TemporarySubscription:
        """Create the queue, its policy and the subscription.

        Raises:
            TransportError: a call failed (what was made is removed).
        """
        try:
            self.queue_url = str(
                _call(
                    lambda: self._sqs.create_queue(
                        QueueName=self.queue_name, Attributes={"MessageRetentionPeriod": "3600"}
                    )
                )["QueueUrl"]
            )
            arn = _call(lambda: self._sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"]))
            queue_arn = str(arn["Attributes"]["QueueArn"])
            policy = json.dumps(queue_policy(queue_arn, [self.topic_arn]))
            _call(lambda: self._sqs.set_queue_attributes(QueueUrl=self.queue_url, Attributes={"Policy": policy}))
            self.subscription_arn = str(
                _call(
                    lambda: self._sns.subscribe(
                        TopicArn=self.topic_arn,
                        Protocol="sqs",
                        Endpoint=queue_arn,
                        Attributes={"RawMessageDelivery": "true"},
                        ReturnSubscriptionArn=True,
                    )
                )["SubscriptionArn"]
            )
        except BaseException:
            self.close()
            raise
        return self

    def receive(self, wait: int = 1) -> list[DeadLetter]:
        """What arrived (deleted from the temporary queue as it is read).

        Raises:
            TransportError: a call failed.
        """
        assert self.queue_url is not None, "open() first"
        url = self.queue_url
        response = _call(
            lambda: self._sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait, MessageAttributeNames=["All"]
            )
        )
        messages = response.get("Messages", [])
        if messages:
            entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)]
            _call(lambda: self._sqs.delete_message_batch(QueueUrl=url, Entries=entries))
        return [_received(message).letter for message in messages]

    def close(self) -> list[str]:
        """Unsubscribe and delete the queue; return what could not be removed (to tell the user). Never raises."""
        left: list[str] = []
        if self.subscription_arn is not None:
            try:
                _call(lambda: self._sns.unsubscribe(SubscriptionArn=self.subscription_arn))
                self.subscription_arn = None
            except TransportError as exc:
                left.append(f"subscription {self.subscription_arn} ({exc})")
        if self.queue_url is not None:
            try:
                _call(lambda: self._sqs.delete_queue(QueueUrl=self.queue_url))
                self.queue_url = None
            except TransportError as exc:
                left.append(f"queue {self.queue_name} ({exc})")
        return left

    def __enter__(self) -> TemporarySubscription:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
