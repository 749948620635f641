"""The channel and transport, composed from one mixin per concern (see the package docstring)."""

from __future__ import annotations

from typing import Any

from kombu.transport import SQS

from eventbus.adapters.aws.sqs import SqsQueues
from eventbus.celery.transport.acknowledging import AcknowledgingMixin
from eventbus.celery.transport.receiving import ReceivingMixin
from eventbus.celery.transport.settling import SettlingMixin
from eventbus.celery.transport.shutdown import ShutdownMixin
from eventbus.celery.transport.visibility import VisibilityMixin


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


class Transport(SQS.Transport):
    """kombu's SQS transport with :class:`Channel`."""

    Channel = Channel
