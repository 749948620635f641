"""Which handler runs for which event name."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from pydantic import ValidationError

from eventbus.core.envelope import Envelope, describe_validation_error
from eventbus.core.payload import EventPayload
from eventbus.errors import EnvelopeError, EnvelopeRejection, SubscriptionError


@dataclass(frozen=True, slots=True)
class Subscription:
    """One event name bound to one handler (a Celery task name, or any callable's key)."""

    event_name: str
    handler: str
    payload_cls: type[EventPayload] | None = None

    def validate_payload(self, envelope: Envelope) -> EventPayload | None:
        """Validate the payload against ``payload_cls`` if the handler declared one.

        Raises:
            EnvelopeError: with reason ``invalid-payload``, naming fields, not values.
        """
        if self.payload_cls is None:
            return None
        return validate_payload(self.payload_cls, envelope.payload)


def validate_payload(payload_cls: type[EventPayload], data: object) -> EventPayload:
    """``data`` validated as ``payload_cls``.

    Raises:
        EnvelopeError: with reason ``invalid-payload``, naming fields, not values.
    """
    try:
        return payload_cls.model_validate(data)
    except ValidationError as exc:
        raise EnvelopeError(
            EnvelopeRejection.INVALID_PAYLOAD, describe_validation_error(exc, "payload", payload_cls)
        ) from None


class SubscriptionRegistry(Mapping[str, Subscription]):
    """Event name -> subscription. One handler per event name per consumer."""

    def __init__(self, subscriptions: Iterable[Subscription] = ()) -> None:
        self._by_event: dict[str, Subscription] = {}
        for subscription in subscriptions:
            self.add(subscription)

    def add(self, subscription: Subscription) -> None:
        """Register a subscription.

        Raises:
            SubscriptionError: another handler already subscribes to that event name.
        """
        existing = self._by_event.get(subscription.event_name)
        if existing is not None and existing.handler != subscription.handler:
            raise SubscriptionError(
                f"event {subscription.event_name!r} has two handlers: {existing.handler!r} and "
                f"{subscription.handler!r}; one queue delivers each event to one handler"
            )
        self._by_event[subscription.event_name] = subscription

    def __getitem__(self, event_name: str) -> Subscription:
        return self._by_event[event_name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_event)

    def __len__(self) -> int:
        return len(self._by_event)
