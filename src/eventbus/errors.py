"""Every error this library raises on purpose: one root, one subclass per kind of failure, each with a stable ``code``.

``code`` is what a failure event carries as ``metadata.errorCode`` when the error ends a callback task, and what a log
search or an alert can match on; it does not change between releases. Texts name fields and kinds, never a message's
values (so they are safe to log even when an event carries secrets or personal data); a vendor's exception is chained
as ``__cause__``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

__all__ = [
    "CallbackPayloadError",
    "ClaimCheckError",
    "ConfigurationError",
    "DeduplicationError",
    "DuplicateInProgress",
    "EntityNotFound",
    "EnvelopeError",
    "EnvelopeRejection",
    "EventBusError",
    "OutboxError",
    "PayloadValidationError",
    "PublishError",
    "RefusedTask",
    "RepositoryError",
    "SubscriptionError",
    "SuccessEventNotPublished",
    "TransportError",
]


class EventBusError(Exception):
    """Root of every error this library raises on purpose."""

    #: Stable identifier of the kind of failure (``metadata.errorCode`` of a failure event).
    code: ClassVar[str] = "EventBusError"


class ConfigurationError(EventBusError):
    """Settings or wiring are wrong; raised at start-up, never while consuming."""

    code: ClassVar[str] = "ConfigurationError"


class EnvelopeRejection(StrEnum):
    """Why a message could not be read as an event envelope (the dead-letter reason's first word)."""

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

    code: ClassVar[str] = "EnvelopeError"

    def __init__(self, reason: EnvelopeRejection, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class ClaimCheckError(EventBusError):
    """A claim-checked event's stored body could not be stored or fetched.

    ``permanent`` says whether trying again can help: a missing object, a bucket the service may not read, a body over
    the limit are permanent (the consumer dead-letters the message with ``reason`` as its reason's kind); an
    unreachable or failing store is not (the message is left for SQS to deliver again). The text names the object's
    bucket and key and the failure, never the body.
    """

    code: ClassVar[str] = "ClaimCheckError"

    def __init__(self, reason: str, detail: str, *, permanent: bool) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.permanent = permanent


class SubscriptionError(EventBusError):
    """Subscriptions are inconsistent (for example two handlers for one event)."""

    code: ClassVar[str] = "SubscriptionError"


class PublishError(EventBusError):
    """The transport refused or failed to publish one or more events."""

    code: ClassVar[str] = "PublishError"

    def __init__(self, message: str, *, failed_ids: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.failed_ids = failed_ids


class SuccessEventNotPublished(PublishError):
    """The work committed but its success event could not be sent (no failure event follows)."""

    code: ClassVar[str] = "SuccessEventNotPublished"


class TransportError(EventBusError):
    """A call to the message transport (SQS) failed; the vendor's exception is chained as ``__cause__``."""

    code: ClassVar[str] = "TransportError"


class RepositoryError(EventBusError):
    """The entity store failed; the driver's exception is chained as ``__cause__``."""

    code: ClassVar[str] = "RepositoryError"


class EntityNotFound(RepositoryError):
    """No entity matches the lookup."""

    code: ClassVar[str] = "EntityNotFound"


class PayloadValidationError(EventBusError):
    """The success payload could not be built from the entity; names the fields, never their values.

    (Its former name ``CallbackPayloadError`` still works: one class, one name in logs and in ``errorCode``.)
    """

    code: ClassVar[str] = "PayloadValidationError"


#: The former name of :class:`PayloadValidationError`.
CallbackPayloadError = PayloadValidationError


class DeduplicationError(EventBusError):
    """The deduplication store failed; the driver's exception is chained as ``__cause__``."""

    code: ClassVar[str] = "DeduplicationError"


class DuplicateInProgress(EventBusError):
    """Another delivery of the same event is being handled; this one is left for redelivery."""

    code: ClassVar[str] = "DuplicateInProgress"


class OutboxError(EventBusError):
    """The outbox store failed; the driver's exception is chained as ``__cause__``."""

    code: ClassVar[str] = "OutboxError"


class RefusedTask(EventBusError):
    """A task message the worker must not run; ``str()`` is the dead-letter reason (names, never values)."""

    code: ClassVar[str] = "RefusedTask"
