"""The callback-task policy: after entity work, publish a success or failure event; optionally delete.

Knows neither Celery nor an ORM: it talks to an :class:`EntityRepository` and an
:class:`EventPublisher`. The Celery task base classes in :mod:`eventbus.celery.tasks` are thin
bindings around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from eventbus.core.envelope import Envelope, describe_validation_error
from eventbus.core.payload import EventFailPayload, EventPayload
from eventbus.core.publishing import EventPublisher
from eventbus.errors import (
    EntityNotFound,
    EventBusError,
    PayloadValidationError,
    PublishError,
    SuccessEventNotPublished,
)
from eventbus.ports import EntityRepository


def error_code(exc: BaseException) -> str:
    """``metadata.errorCode``: the exception's ``code`` attribute if it is a non-empty string, else its class name."""
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) and code else type(exc).__name__


def safe_error_message(exc: BaseException) -> str:
    """A failure message fit to publish: our own errors' texts (written to be safe), else only the class name.

    Arbitrary exception texts can carry secrets, SQL or personal data, so they are not published.
    """
    if isinstance(exc, EventBusError):
        return str(exc)
    return f"{type(exc).__name__} raised while processing the entity"


@dataclass(frozen=True, slots=True)
class CallbackSpec:
    """What a callback task declares."""

    model: Any
    payload_cls: type[EventPayload] | None = None
    exception_payload_cls: type[EventFailPayload] | None = None
    delete_on_success: bool = False
    delete_on_failure: bool = False


class EntityCallbacks:
    """Runs the policy for one task execution: load, then succeed or fail."""

    def __init__(
        self, spec: CallbackSpec, repository: EntityRepository, publisher: EventPublisher, *, origin: str
    ) -> None:
        self.spec = spec
        self.repository = repository
        self.publisher = publisher
        self.origin = origin
        self.lookup: dict[str, Any] | None = None
        self.instance: Any = None

    def get_instance(self, **lookup: Any) -> Any:
        """Load the entity through the repository and remember it (and the lookup) for the callbacks.

        Raises:
            EntityNotFound: nothing matches; the task fails with error code ``EntityNotFound``.
        """
        self.lookup = dict(lookup)
        self.instance = self.repository.get(self.spec.model, **lookup)
        return self.instance

    def success_envelope(self) -> Envelope | None:
        """Build the success event from the loaded instance (``None`` without ``payload_cls``).

        Raises:
            PayloadValidationError: the instance does not fit ``payload_cls``.
        """
        if self.spec.payload_cls is None:
            return None
        source = self.instance
        try:
            payload = self.spec.payload_cls.model_validate(source, from_attributes=True)
        except ValidationError as exc:
            detail = describe_validation_error(exc, "", self.spec.payload_cls)
            raise PayloadValidationError(f"{self.spec.payload_cls.__name__} cannot be built: {detail}") from None
        entity_id = self.repository.identity(source) if source is not None else self._lookup_id()
        return self.publisher.envelope(payload, entity_id=entity_id)

    def succeed(self) -> None:
        """Inside the task's transaction: delete if asked, and publish the success event after commit.

        With a transactional publisher (the outbox) the event is written now, in the transaction, and relayed after
        the commit; otherwise it is sent once the transaction has committed.
        """
        envelope = self.success_envelope()
        if self.spec.delete_on_success and self.instance is not None:
            self.repository.delete(self.instance)
        if envelope is None:
            return
        if self.transactional:
            self.publisher.port.publish(envelope)
        else:
            self.repository.on_commit(lambda: self._publish_success(envelope))

    @property
    def transactional(self) -> bool:
        """True when publishing joins the repository's transaction (the outbox publisher)."""
        return self.publisher.port.transactional

    def _publish_success(self, envelope: Envelope) -> None:
        try:
            self.publisher.port.publish(envelope)
        except PublishError as exc:
            raise SuccessEventNotPublished(f"{envelope.event_name} committed but not published: {exc}") from exc

    def fail(self, exc: BaseException) -> None:
        """After the final failure: delete if asked (own transaction), then publish the failure event.

        A failed success publish (:class:`SuccessEventNotPublished`) is not a failure of the work:
        nothing is deleted and no failure event is sent.
        """
        if isinstance(exc, SuccessEventNotPublished):
            return
        entity_id = self._lookup_id()
        with self.repository.atomic():  # the delete and, with the outbox, the failure event: one transaction
            if self.spec.delete_on_failure and self.lookup is not None:
                try:
                    instance = self.repository.get(self.spec.model, **self.lookup)
                except EntityNotFound:
                    instance = None
                if instance is not None:
                    entity_id = self.repository.identity(instance)
                    self.repository.delete(instance)
            if self.transactional:
                self._publish_failure(exc, entity_id)
        if not self.transactional:
            self._publish_failure(exc, entity_id)

    def _publish_failure(self, exc: BaseException, entity_id: str | None) -> None:
        if self.spec.exception_payload_cls is None:
            return
        payload = self.spec.exception_payload_cls(entity_id=entity_id, error_message=safe_error_message(exc))
        self.publisher.publish(payload, entity_id=entity_id, error_code=error_code(exc), error_origin=self.origin)

    def _lookup_id(self) -> str | None:
        if self.instance is not None:
            return self.repository.identity(self.instance)
        if not self.lookup:
            return None
        for key in ("id", "pk", "entity_id", "uuid"):
            if key in self.lookup:
                return str(self.lookup[key])
        return str(next(iter(self.lookup.values())))
