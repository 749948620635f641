"""The SNS publisher: one ``Publish`` per event, ``PublishBatch`` (10 per call) for batches."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError

from eventbus.core.envelope import Envelope
from eventbus.core.errors import PublishError
from eventbus.core.ports import Publisher

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

#: SNS's PublishBatch limit.
SNS_BATCH_SIZE: Final = 10


def _attributes(envelope: Envelope) -> dict[str, Any]:
    # eventName as a message attribute lets subscriptions filter by event without reading the body.
    return {"eventName": {"DataType": "String", "StringValue": envelope.event_name}}


class SnsPublisher(Publisher):
    """Publishes envelopes as JSON to one SNS topic.

    ``topic_arn`` may be omitted; the ARN is then looked up once with ``CreateTopic`` (which is
    idempotent) on the first publish. Set it explicitly in production to need no
    ``sns:CreateTopic`` permission.
    """

    def __init__(self, client: SNSClient, *, topic_arn: str | None = None, topic_name: str | None = None) -> None:
        if topic_arn is None and topic_name is None:
            raise ValueError("SnsPublisher needs topic_arn or topic_name")
        self._client = client
        self._topic_arn = topic_arn
        self._topic_name = topic_name
        self._lock = threading.Lock()

    @property
    def topic_arn(self) -> str:
        """The topic's ARN, resolved on first use if only the name was given."""
        if self._topic_arn is None:
            with self._lock:
                if self._topic_arn is None:
                    assert self._topic_name is not None
                    try:
                        self._topic_arn = self._client.create_topic(Name=self._topic_name)["TopicArn"]
                    except (ClientError, BotoCoreError) as exc:
                        raise PublishError(f"cannot resolve SNS topic {self._topic_name!r}: {exc}") from exc
        return self._topic_arn

    def publish(self, envelope: Envelope) -> str:
        """Publish one envelope; return SNS's MessageId."""
        try:
            response = self._client.publish(
                TopicArn=self.topic_arn, Message=envelope.to_json(), MessageAttributes=_attributes(envelope)
            )
        except (ClientError, BotoCoreError) as exc:
            raise PublishError(f"SNS publish of {envelope.event_name!r} failed: {exc}") from exc
        return response["MessageId"]

    def publish_batch(self, envelopes: Sequence[Envelope]) -> list[str]:
        """Publish in ``PublishBatch`` calls of 10; every chunk is tried before failures are raised."""
        ids: list[str] = [""] * len(envelopes)
        failed: list[str] = []
        reasons: list[str] = []
        for start in range(0, len(envelopes), SNS_BATCH_SIZE):
            chunk = envelopes[start : start + SNS_BATCH_SIZE]
            entries: list[Any] = [
                {"Id": str(start + i), "Message": e.to_json(), "MessageAttributes": _attributes(e)}
                for i, e in enumerate(chunk)
            ]
            try:
                response = self._client.publish_batch(TopicArn=self.topic_arn, PublishBatchRequestEntries=entries)
            except HTTPClientError as exc:
                # SNS is unreachable (refused, reset, timed out): the remaining chunks would fail the same way
                failed.extend(str(i) for i in range(start, len(envelopes)))
                reasons.append(str(exc))
                break
            except (ClientError, BotoCoreError) as exc:
                failed.extend(entry["Id"] for entry in entries)
                reasons.append(str(exc))
                continue
            for ok in response.get("Successful", []):
                ids[int(ok["Id"])] = ok["MessageId"]
            for bad in response.get("Failed", []):
                failed.append(bad["Id"])
                reasons.append(f"{bad['Id']}: {bad.get('Code', '?')}")
        if failed:
            raise PublishError(
                f"SNS publish_batch: {len(failed)} of {len(envelopes)} failed ({'; '.join(reasons[:3])})",
                failed_ids=tuple(failed),
            )
        return ids
