"""Deprecated path: the errors live in :mod:`eventbus.errors` (kept importable here for one release)."""

from eventbus.errors import (
    CallbackPayloadError,
    ConfigurationError,
    DeduplicationError,
    DuplicateInProgress,
    EntityNotFound,
    EnvelopeError,
    EnvelopeRejection,
    EventBusError,
    OutboxError,
    PublishError,
    RefusedTask,
    RepositoryError,
    SubscriptionError,
    SuccessEventNotPublished,
    TransportError,
)

__all__ = [
    "CallbackPayloadError",
    "ConfigurationError",
    "DeduplicationError",
    "DuplicateInProgress",
    "EntityNotFound",
    "EnvelopeError",
    "EnvelopeRejection",
    "EventBusError",
    "OutboxError",
    "PublishError",
    "RefusedTask",
    "RepositoryError",
    "SubscriptionError",
    "SuccessEventNotPublished",
    "TransportError",
]
