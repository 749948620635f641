"""The channel and transport, composed from one mixin per concern (see the package docstring)."""

from __future__ import annotations

import uuid
from typing import Any, Final

from kombu.transport import SQS

from eventbus.adapters.aws.sqs import SqsQueues
from eventbus.celery.transport.acknowledging import AcknowledgingMixin
from eventbus.celery.transport.receiving import ReceivingMixin
from eventbus.celery.transport.settling import SettlingMixin
from eventbus.celery.transport.shutdown import ShutdownMixin
from eventbus.celery.transport.visibility import VisibilityMixin
from eventbus.core.fifo import valid_id
from eventbus.core.naming import FIFO_SUFFIX

#: The SQS system attribute naming a FIFO message's group.
GROUP_ATTRIBUTE: Final = "MessageGroupId"


class Channel(ReceivingMixin, VisibilityMixin, SettlingMixin, AcknowledgingMixin, ShutdownMixin):
    """kombu's SQS channel with batched deletes and visibility changes, a heartbeat, and outage backoff.

    It is the consumer's :class:`~eventbus.ports.DeliverySettlement`, and owns the one
    :class:`~eventbus.adapters.aws.sqs.SqsQueues` (attribute cache included) its transport and acknowledger share.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options = self.transport_options
        #: Every SQS call of the channel and its acknowledger besides kombu's asynchronous ones.
        self.sqs_queues = SqsQueues(self._sqs_client)
        self._init_receiving(options)
        self._init_visibility(options)
        self._init_acknowledging(options)
        self._init_shutdown()

    def _sqs_client(self, queue: str) -> Any:
        return self.sqs(queue=queue)

    @property
    def fetch_message_attributes(self) -> Any:
        """kombu's option, with ``MessageGroupId`` always asked for: FIFO groups are kept in order by it."""
        chosen = self.transport_options.get("fetch_message_attributes")
        if isinstance(chosen, dict):
            system = [*chosen.get("MessageSystemAttributeNames", []), GROUP_ATTRIBUTE]
            return {**chosen, "MessageSystemAttributeNames": system}
        return [*(chosen if isinstance(chosen, list) else []), GROUP_ATTRIBUTE]

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> Any:
        """kombu's, except that a task message sent to a FIFO queue without a ``MessageGroupId`` gets a group of its
        own, its task id (kombu's default puts every task in one group ``default``, which runs them one at a time):
        plain Celery tasks stay parallel; give ``MessageGroupId`` in ``apply_async(properties=...)`` to order some."""
        properties = message.get("properties")
        if queue.endswith(FIFO_SUFFIX) and isinstance(properties, dict) and "MessageGroupId" not in properties:
            headers = message.get("headers")
            task_id = headers.get("id") if isinstance(headers, dict) else None
            properties["MessageGroupId"] = valid_id(str(task_id)) if task_id else str(uuid.uuid4())
        return super()._put(queue, message, **kwargs)


class Transport(SQS.Transport):
    """kombu's SQS transport with :class:`Channel`."""

    Channel = Channel
