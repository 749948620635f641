"""The library's error hierarchy: one root, one subclass per kind of failure."""

from __future__ import annotations

from enum import StrEnum


class EventBusError(Exception):
    """Root of every error this library raises on purpose."""


class ConfigurationError(EventBusError):
    """Settings or wiring are wrong; raised at start-up, never while consuming."""


class EnvelopeRejection(StrEnum):
    """Why a message could not be read as an event envelope."""

    OVERSIZED = "oversized"
    MALFORMED_JSON = "malformed-json"
    NOT_AN_ENVELOPE = "not-an-envelope"
    TOO_DEEP = "too-deep"
    INVALID_METADATA = "invalid-metadata"
    INVALID_PAYLOAD = "invalid-payload"


class EnvelopeError(EventBusError):
    """A message is not a valid event envelope.

    The text names the problem and the offending fields, never their values, so it is
    safe to log even when the message carries secrets or personal data.
    """

    def __init__(self, reason: EnvelopeRejection, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class SubscriptionError(EventBusError):
    """Subscriptions are inconsistent (for example two handlers for one event)."""


class PublishError(EventBusError):
    """The transport refused or failed to publish one or more events."""

    def __init__(self, message: str, *, failed_ids: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.failed_ids = failed_ids


class RepositoryError(EventBusError):
    """The entity store failed; the driver's exception is chained as ``__cause__``."""


class EntityNotFound(RepositoryError):
    """No entity matches the lookup."""

    code = "EntityNotFound"
