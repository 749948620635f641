"""eventbus: typed events over SNS/SQS, consumed by Celery workers; hexagonal core, pluggable adapters.

The transport-neutral names are importable from here; the Celery runtime lives in :mod:`eventbus.celery`,
wiring in :mod:`eventbus.container`.
"""

from eventbus.core.envelope import Envelope, Metadata, decode_message_body
from eventbus.core.payload import EventFailPayload, EventPayload
from eventbus.core.publishing import EventPublisher, Outgoing
from eventbus.errors import (
    ConfigurationError,
    EntityNotFound,
    EnvelopeError,
    EnvelopeRejection,
    EventBusError,
    PublishError,
    RepositoryError,
    SubscriptionError,
)
from eventbus.settings import EventBusSettings

__all__ = [
    "ConfigurationError",
    "EntityNotFound",
    "Envelope",
    "EnvelopeError",
    "EnvelopeRejection",
    "EventBusError",
    "EventBusSettings",
    "EventFailPayload",
    "EventPayload",
    "EventPublisher",
    "Metadata",
    "Outgoing",
    "PublishError",
    "RepositoryError",
    "SubscriptionError",
    "decode_message_body",
]
