"""The consumer's decision for one raw message: run a handler, drop it, or dead-letter it.

Pure logic shared by every consumer adapter, so they all give bad input the same fate:

==========================  ===============  ==============================================
input                       fate             why
==========================  ===============  ==============================================
subscribed, valid event     ``DISPATCH``     run the handler; ack only after it succeeded
event nobody subscribed to  ``DROP``         a topic fans every event out to every queue
oversized body              ``DEAD_LETTER``  it can never be handled; keep it for a human
malformed JSON / envelope   ``DEAD_LETTER``  same
payload fails validation    ``DEAD_LETTER``  same: retrying cannot fix the data
==========================  ===============  ==============================================

Each event is parsed and validated once: the decision carries the envelope and the validated payload to whoever
runs the handler. A consumer whose handlers run in another process (Celery's prefork pool, where only JSON crosses)
asks :func:`decide` not to validate the payload (``validate_payload=False``) and validates it where the handler runs,
giving an invalid payload the same fate from there (:class:`eventbus.celery.outcomes.DeadLetter`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from eventbus.core.envelope import MAX_MESSAGE_BYTES, Envelope, read_message_body
from eventbus.core.payload import EventPayload
from eventbus.core.registry import Subscription, SubscriptionRegistry
from eventbus.errors import EnvelopeError


class Fate(StrEnum):
    """What happens to a message."""

    DISPATCH = "dispatch"
    DROP = "drop"
    DEAD_LETTER = "dead-letter"


@dataclass(frozen=True, slots=True)
class Decision:
    """The fate of one message, with what a handler or a log line needs."""

    fate: Fate
    reason: str = ""
    envelope: Envelope | None = None
    subscription: Subscription | None = None
    #: ``metadata.eventId`` or the SNS MessageId (``""`` for a raw delivery without one): see ``read_message_body``.
    event_id: str = ""
    #: The payload as the handler takes it: an instance of its payload class when it declared one and the decision
    #: validated it, else the payload dict (``None`` unless the fate is ``DISPATCH``).
    payload: EventPayload | dict[str, object] | None = None

    @property
    def event_name(self) -> str:
        """The event's name if the envelope could be read, else ``""``."""
        return self.envelope.event_name if self.envelope is not None else ""


def decide(
    body: str | bytes,
    registry: SubscriptionRegistry,
    *,
    max_bytes: int = MAX_MESSAGE_BYTES,
    unsubscribed: Fate = Fate.DROP,
    validate_payload: bool = True,
) -> Decision:
    """Decide the fate of one message body. Never raises for any input.

    ``unsubscribed`` is the fate of a valid event nobody subscribed to: ``DROP`` (default) or ``DEAD_LETTER``
    (for a queue that should only ever receive events it handles). ``validate_payload=False`` leaves the payload
    unvalidated (``decision.payload`` is the dict) for a consumer that validates it where the handler runs.
    """
    try:
        envelope, event_id = read_message_body(body, max_bytes=max_bytes)
    except EnvelopeError as exc:
        return Decision(Fate.DEAD_LETTER, reason=str(exc))
    subscription = registry.get(envelope.event_name)
    if subscription is None:
        reason = f"no handler subscribes to event {envelope.event_name!r}"
        return Decision(unsubscribed, reason=reason, envelope=envelope)
    payload: EventPayload | dict[str, object] = envelope.payload
    if validate_payload and subscription.payload_cls is not None:
        try:
            payload = subscription.validate_payload(envelope) or payload
        except EnvelopeError as exc:
            return Decision(Fate.DEAD_LETTER, reason=str(exc), envelope=envelope, subscription=subscription)
    return Decision(Fate.DISPATCH, envelope=envelope, subscription=subscription, event_id=event_id, payload=payload)
