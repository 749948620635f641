"""Dead letters as an operator sees them: decoded, masked, filtered, described. Pure: no SQS call here.

A dead letter is a message in a dead-letter queue, either a copy the consumer sent there (message attribute
``eventbus-reason`` says why, ``eventbus-source-queue`` where from) or a message SQS's redrive policy moved after
``maxReceiveCount`` receives (no reason attribute: its receive count tells the story). :func:`describe` decodes one
into a :class:`LetterView`: event name, entity id, event id, reason, receive count, age, size, and the metadata and
payload as they may be shown (``metadata.authorization`` in any case replaced, a ``containsPersonalData`` payload
withheld). A body that is no envelope is shown as its first bytes, escaped and with any value that looks like a secret
replaced, and its length; never raises.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from eventbus.core.envelope import MAX_MESSAGE_BYTES, REDACTED, read_message_body
from eventbus.core.redaction import redact, sensitive_values_in_body, sensitive_values_of
from eventbus.errors import EnvelopeError

__all__ = [
    "NO_REASON",
    "PREVIEW_CHARACTERS",
    "REASON_ATTRIBUTE",
    "REDRIVEN_REASON_ATTRIBUTE",
    "SOURCE_QUEUE_ATTRIBUTE",
    "DeadLetter",
    "LetterFilter",
    "LetterView",
    "describe",
    "render",
]

#: The message attribute the consumer's dead-letter copy carries: why it was dead-lettered.
REASON_ATTRIBUTE: Final = "eventbus-reason"
#: The message attribute the consumer's copy carries: the queue it was received from.
SOURCE_QUEUE_ATTRIBUTE: Final = "eventbus-source-queue"
#: What ``eventbus dlq redrive`` turns ``eventbus-reason`` into on the message it sends back.
REDRIVEN_REASON_ATTRIBUTE: Final = "eventbus-redriven-reason"
#: What ``--reason`` matches for a message with no reason attribute (one SQS's redrive policy moved).
NO_REASON: Final = "none"
#: How much of a body that is no envelope is shown.
PREVIEW_CHARACTERS: Final = 80


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message read from a dead-letter queue: what SQS said about it, transport handles left out."""

    message_id: str
    body: str
    #: Message attributes as SQS returns them (``{"DataType": ..., "StringValue": ...}`` per name).
    message_attributes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    receive_count: int | None = None
    sent_at: datetime | None = None

    @property
    def reason(self) -> str:
        """The ``eventbus-reason`` attribute; ``""`` when SQS's redrive policy moved the message."""
        return self.string_attribute(REASON_ATTRIBUTE)

    def string_attribute(self, name: str) -> str:
        """A message attribute's string value (``""`` when absent or binary)."""
        value = self.message_attributes.get(name, {}).get("StringValue")
        return value if isinstance(value, str) else ""


@dataclass(frozen=True, slots=True)
class LetterView:
    """A dead letter as it may be shown: every value masked already."""

    message_id: str
    reason: str
    receive_count: int | None
    age_seconds: float | None
    size: int
    source_queue: str
    #: Empty when the body is no envelope (then ``problem`` says why and ``preview`` shows its start).
    event_name: str = ""
    entity_id: str = ""
    event_id: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    payload: object = None
    problem: str = ""
    preview: str = ""

    @property
    def is_envelope(self) -> bool:
        """True when the body decoded as an event envelope."""
        return not self.problem

    def to_json(self) -> dict[str, Any]:
        """One JSON object: what ``--json`` prints per line."""
        document: dict[str, Any] = {
            "messageId": self.message_id,
            "reason": self.reason,
            "receiveCount": self.receive_count,
            "ageSeconds": None if self.age_seconds is None else round(self.age_seconds, 3),
            "size": self.size,
            "sourceQueue": self.source_queue,
        }
        if self.is_envelope:
            document.update(
                eventName=self.event_name,
                entityId=self.entity_id,
                eventId=self.event_id,
                metadata=dict(self.metadata),
                payload=self.payload,
            )
        else:
            document.update(notAnEnvelope=self.problem, preview=self.preview)
        return document


@dataclass(frozen=True, slots=True)
class LetterFilter:
    """Which dead letters a command acts on; every criterion given must hold (none given: all of them).

    ``events`` and ``entities`` match exactly (a body that is no envelope matches neither); ``reasons`` match the
    start of the reason attribute, any case (``invalid-payload`` matches ``invalid-payload: amount: missing``), and
    :data:`NO_REASON` matches a message without one.
    """

    events: frozenset[str] = frozenset()
    entities: frozenset[str] = frozenset()
    reasons: tuple[str, ...] = ()

    @classmethod
    def of(cls, events: Iterable[str] = (), entities: Iterable[str] = (), reasons: Iterable[str] = ()) -> LetterFilter:
        """A filter from command-line values (repeatable options)."""
        return cls(frozenset(events), frozenset(entities), tuple(reason.casefold() for reason in reasons))

    def __bool__(self) -> bool:
        return bool(self.events or self.entities or self.reasons)

    def matches(self, view: LetterView) -> bool:
        """True when ``view`` passes every criterion given."""
        if self.events and (not view.is_envelope or view.event_name not in self.events):
            return False
        if self.entities and (not view.is_envelope or view.entity_id not in self.entities):
            return False
        if self.reasons:
            reason = view.reason.casefold()
            return any(reason.startswith(wanted) if reason else wanted == NO_REASON for wanted in self.reasons)
        return True

    def describe(self) -> str:
        """The filter in words, for messages such as 'nothing matched'."""
        parts = [f"--event {name}" for name in sorted(self.events)]
        parts += [f"--entity {entity}" for entity in sorted(self.entities)]
        parts += [f"--reason {reason}" for reason in self.reasons]
        return " ".join(parts) or "no filter"


def describe(letter: DeadLetter, now: datetime, *, max_bytes: int = MAX_MESSAGE_BYTES) -> LetterView:
    """Decode ``letter`` for display: masked as it may be logged. Never raises."""
    body = letter.body
    size = len(body.encode("utf-8", "surrogatepass"))
    age = (now - letter.sent_at).total_seconds() if letter.sent_at is not None else None
    try:
        envelope, event_id = read_message_body(body, max_bytes=max_bytes)
    except EnvelopeError as exc:
        values = sensitive_values_in_body(body, max_bytes)
        return LetterView(
            message_id=letter.message_id,
            reason=_masked(letter.reason, values),
            receive_count=letter.receive_count,
            age_seconds=age,
            size=size,
            source_queue=letter.string_attribute(SOURCE_QUEUE_ATTRIBUTE),
            problem=exc.reason.value,
            preview=_preview(body, values),
        )
    values = sensitive_values_of(envelope)
    return LetterView(
        message_id=letter.message_id,
        reason=_masked(letter.reason, values),
        receive_count=letter.receive_count,
        age_seconds=age,
        size=size,
        source_queue=letter.string_attribute(SOURCE_QUEUE_ATTRIBUTE),
        event_name=envelope.event_name,
        entity_id=_masked(envelope.metadata.entity_id, values),
        event_id=_masked(event_id, values),
        metadata=envelope.metadata.to_log(),
        payload=envelope.payload_for_log(),
    )


def render(view: LetterView) -> str:
    """One dead letter in a few human lines (the text form of ``peek`` and ``redrive --dry-run``)."""
    reason = view.reason or f"(no reason attribute: moved by SQS after {_count(view.receive_count)} receives)"
    facts = f"receives {_count(view.receive_count)}, age {_age(view.age_seconds)}"
    head = f"{view.message_id}  {facts}, {view.size} bytes"
    if not view.is_envelope:
        return f"{head}\n  not an envelope ({view.problem}): {view.preview}\n  reason: {reason}"
    entity = view.entity_id or "-"
    event_id = view.event_id or "-"
    payload = json.dumps(view.payload, ensure_ascii=False, default=str, sort_keys=True)
    return (
        f"{head}\n  event {view.event_name}  entity {entity}  event id {event_id}\n"
        f"  reason: {reason}\n  payload: {payload}"
    )


def _count(count: int | None) -> str:
    return "?" if count is None else str(count)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(seconds, 0.0)
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _masked(text: str, values: set[str]) -> str:
    return redact(text, values) if text and values else text


#: In a body that is no envelope nothing says which values are secret: what follows an ``authorization`` key or a
#: credential scheme (``Bearer``, ``Basic``) is masked whatever it is.
_LOOKS_SECRET: Final = re.compile(
    r"""(?i)(authorization\\?["']?\s*[:=]\s*\\?["']?\s*(?:(?:bearer|basic|token)\s+)?|\b(?:bearer|basic|token)\s+)"""
    r"""[^\s"'\\,;}]+"""
)


def _keep_label(match: re.Match[str]) -> str:
    return f"{match.group(1)}{REDACTED}"


def _preview(body: str, values: set[str]) -> str:
    """The first characters of a body, escaped (control characters and quotes visible), secrets replaced.

    Replaced before it is cut, so that a secret straddling the cut shows no part of itself.
    """
    start = _LOOKS_SECRET.sub(_keep_label, _masked(body, values))[:PREVIEW_CHARACTERS]
    more = f"... ({len(body)} characters)" if len(body) > PREVIEW_CHARACTERS else ""
    return json.dumps(start, ensure_ascii=True) + more
