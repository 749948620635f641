"""The wire format: ``{"metadata": {...}, "payload": {...}}``, and how to read it off a queue.

Liberal in what it accepts (naive ``publishDate`` read as UTC, any string as ``entityId``,
unknown metadata keys kept), exact in what it sends (camelCase keys, ``publishDate`` as a
zone-less ISO timestamp in UTC, as the producers we interoperate with write it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final

from pydantic import (
    AliasGenerator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_serializer,
    field_validator,
)
from pydantic.alias_generators import to_camel

from eventbus.errors import EnvelopeError, EnvelopeRejection

#: The default limit on a message body, in bytes (``EVENTBUS_MAX_MESSAGE_BYTES``): SQS's and SNS's largest message,
#: 1 MiB (SQS since 2025, SNS since September 2026; 256 KiB before). Larger bodies are rejected before parsing.
MAX_MESSAGE_BYTES: Final = 1024 * 1024

#: Deepest nesting of objects and arrays an envelope may have (metadata and payload). Deeper values cannot be
#: handed to a worker pool safely (pickling, encoding and validation recurse once per level), and no real event needs
#: them; such messages are dead-lettered with reason ``too-deep``.
MAX_NESTING_DEPTH: Final = 100

REDACTED: Final = "***"

#: What a location element of a validation error that is not a declared field name shows as (a dict key, a tag).
UNDECLARED: Final = "*"


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def is_authorization_key(key: object) -> bool:
    """True for a metadata key naming the authorization header, in any case (``Authorization``, ``AUTHORIZATION``)."""
    return isinstance(key, str) and key.casefold() == "authorization"


class Metadata(BaseModel):
    """Event metadata. Attributes are snake_case; the wire keys are camelCase.

    ``authorization`` is a :class:`~pydantic.SecretStr`: it is sent on the wire unchanged
    but shows as ``**********`` in ``repr`` and logs. A producer that spells the key in another
    case (``Authorization``) gets it kept as an extra key: sent unchanged too, and hidden the same way.
    """

    model_config = ConfigDict(
        alias_generator=AliasGenerator(serialization_alias=to_camel, validation_alias=to_camel),
        populate_by_name=True,
        extra="allow",
        frozen=True,
    )

    contains_personal_data: bool = False
    tracestate: str = ""
    traceparent: str = ""
    error_origin: str = ""
    error_code: str = ""
    authorization: SecretStr = SecretStr("")
    publish_date: datetime = Field(default_factory=utc_now)
    entity_id: str = ""
    publisher_name: str = ""
    event_name: str = Field(min_length=1)

    @field_validator("publish_date")
    @classmethod
    def _as_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @field_validator("entity_id", mode="before")
    @classmethod
    def _entity_id_as_text(cls, value: object) -> object:
        # Producers send UUIDs, ints or nothing at all; the id is opaque text to us.
        if value is None:
            return ""
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            return str(value)
        return value

    @field_serializer("publish_date")
    def _publish_date_wire(self, value: datetime) -> str:
        return value.astimezone(UTC).replace(tzinfo=None).isoformat()

    @field_serializer("authorization", when_used="json")
    def _authorization_wire(self, value: SecretStr) -> str:
        return value.get_secret_value()

    def to_wire(self) -> dict[str, Any]:
        """The metadata as it goes on the wire (camelCase keys, JSON types, secret included)."""
        return self.model_dump(mode="json", by_alias=True)

    def to_log(self, wire: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The metadata as it may appear in logs: ``authorization`` (in any case) replaced when set. ``wire``: this
        metadata's :meth:`to_wire`, when the caller has it already (not dumped twice)."""
        if wire is None:
            wire = self.to_wire()
        return {key: REDACTED if value and is_authorization_key(key) else value for key, value in wire.items()}

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # repr and str of the model show extra keys as they are; an extra "Authorization" must not show
        for key, value in super().__repr_args__():
            yield (
                key,
                SecretStr(str(value)) if is_authorization_key(key) and not isinstance(value, SecretStr) else value,
            )


class Envelope(BaseModel):
    """One event: its metadata and its payload (a JSON object)."""

    model_config = ConfigDict(frozen=True)

    metadata: Metadata
    payload: dict[str, Any]

    @property
    def event_name(self) -> str:
        """The event's name, ``metadata.eventName``."""
        return self.metadata.event_name

    def to_wire(self) -> dict[str, Any]:
        """The envelope as a JSON-ready dict."""
        return {"metadata": self.metadata.to_wire(), "payload": self.payload}

    def to_json(self) -> str:
        """The envelope as JSON text, as published."""
        return json.dumps(self.to_wire(), separators=(", ", ": "), ensure_ascii=False)

    def payload_for_log(self) -> dict[str, Any] | str:
        """The payload if it may be logged, else a placeholder (``containsPersonalData``)."""
        if self.metadata.contains_personal_data:
            return "<withheld: containsPersonalData>"
        return self.payload

    def __repr__(self) -> str:
        return f"Envelope(metadata={self.metadata.to_log()!r}, payload={self.payload_for_log()!r})"

    __str__ = __repr__


def describe_validation_error(error: ValidationError, prefix: str, model: type[BaseModel] | None = None) -> str:
    """A validation error as 'location: error type' pairs that carry nothing of the input.

    A location keeps the field names (and aliases) declared by ``model`` and the models, typed dicts and dataclasses
    it nests, and list indices; any other element (a dict key, a union tag, a key a model does not declare) shows
    as ``*``. Without ``model`` the location is pydantic's as it is: only for input the application built itself.
    The problem is pydantic's error type (``int_parsing``, ``missing``, ``value_error``), never its message, which
    may quote the input (a validator's ``ValueError(f"bad {value}")``, an unknown union tag).
    """
    declared = _declared_names(model) if model is not None else None
    parts = []
    for item in error.errors(include_input=False, include_url=False, include_context=False)[:5]:
        elements = (_location_element(p, declared) for p in item["loc"])
        location = ".".join(p for p in (prefix, *elements) if p != "")
        parts.append(f"{location}: {item['type']}")
    return "; ".join(parts)


def _location_element(element: int | str, declared: frozenset[str] | None) -> str:
    if isinstance(element, int) or declared is None or element in declared:
        return str(element)
    return UNDECLARED


@lru_cache(maxsize=256)
def _declared_names(model: type[BaseModel]) -> frozenset[str]:
    """Every field name and alias pydantic validates ``model`` with, nested ones included (from its core schema)."""
    names: set[str] = set()
    stack: list[object] = [model.__pydantic_core_schema__]
    while stack:
        node = stack.pop()
        if isinstance(node, (list, tuple)):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        kind = node.get("type")
        if kind in ("model-fields", "typed-dict"):
            names.update(node["fields"])
        elif kind == "dataclass-args":
            names.update(field["name"] for field in node["fields"])
        # an alias is a name, a path [name, index, ...] or choices [[name, ...], ...]
        names.update(alias for alias in _flatten(node.get("validation_alias")) if isinstance(alias, str))
        # defaults and metadata hold values and functions, not schemas
        stack.extend(value for key, value in node.items() if key not in ("default", "metadata", "serialization"))
    return frozenset(names)


def _flatten(value: object) -> Iterator[object]:
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _flatten(item)
    else:
        yield value


def nesting_depth_exceeds(value: object, limit: int = MAX_NESTING_DEPTH) -> bool:
    """True if ``value`` nests dicts, lists or tuples more than ``limit`` levels deep.

    Recursive, but never deeper than ``limit`` frames, whatever the depth of ``value``.
    """
    return _deeper_than(value, limit)


def _deeper_than(value: object, budget: int) -> bool:
    kind = type(value)
    if kind is dict:
        children: Any = value.values()  # type: ignore[attr-defined]
    elif kind is list or kind is tuple:
        children = value
    else:
        return False
    if budget <= 0:
        return True
    for child in children:
        inner = type(child)
        if (inner is dict or inner is list or inner is tuple) and _deeper_than(child, budget - 1):
            return True
    return False


def may_nest_deeper_than(text: str | bytes, limit: int = MAX_NESTING_DEPTH) -> bool:
    """False when ``text`` (JSON) has too few brackets to nest more than ``limit`` levels: the walk can be skipped."""
    if isinstance(text, str):
        return text.count("{") + text.count("[") > limit
    return text.count(b"{") + text.count(b"[") > limit


def envelope_from_mapping(data: object, *, check_depth: bool = True) -> Envelope:
    """Validate an already-parsed JSON value as an envelope.

    Raises:
        EnvelopeError: the value is not an envelope; the text names fields, never values.
    """
    if not isinstance(data, dict):
        raise EnvelopeError(EnvelopeRejection.NOT_AN_ENVELOPE, f"expected a JSON object, got {type(data).__name__}")
    metadata = data.get("metadata")
    if not isinstance(metadata, dict):
        raise EnvelopeError(EnvelopeRejection.NOT_AN_ENVELOPE, "missing or non-object 'metadata'")
    if "payload" not in data or not isinstance(data["payload"], dict):
        raise EnvelopeError(EnvelopeRejection.NOT_AN_ENVELOPE, "missing or non-object 'payload'")
    if not isinstance(metadata.get("eventName"), str) or not metadata["eventName"]:
        raise EnvelopeError(EnvelopeRejection.INVALID_METADATA, "metadata.eventName: missing or not a non-empty string")
    if check_depth and nesting_depth_exceeds(data):
        raise EnvelopeError(EnvelopeRejection.TOO_DEEP, f"objects and arrays nest more than {MAX_NESTING_DEPTH} levels")
    try:
        parsed = Metadata.model_validate(metadata)
    except ValidationError as exc:
        raise EnvelopeError(
            EnvelopeRejection.INVALID_METADATA, describe_validation_error(exc, "metadata", Metadata)
        ) from None
    return Envelope.model_construct(metadata=parsed, payload=data["payload"])


def _loads(text: str | bytes) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        # ValueError covers JSONDecodeError and UnicodeDecodeError; the text itself is never echoed.
        raise EnvelopeError(EnvelopeRejection.MALFORMED_JSON, "body is not valid JSON") from None


def is_sns_notification(data: object) -> bool:
    """True for an SNS ``Notification`` wrapper as SNS delivers it to SQS (raw delivery off)."""
    return isinstance(data, dict) and data.get("Type") == "Notification" and isinstance(data.get("Message"), str)


def decode_message_body(body: str | bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Envelope:
    """Read an SQS message body as an event: an SNS notification or a raw-delivery envelope.

    Raises:
        EnvelopeError: with a :class:`EnvelopeRejection` reason; never any other exception.
    """
    return read_message_body(body, max_bytes=max_bytes)[0]


def read_message_body(body: str | bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> tuple[Envelope, str]:
    """Like :func:`decode_message_body`, and also the event's identity for deduplication.

    The identity is ``metadata.eventId`` when the producer set one (an unknown key, kept), else the SNS
    ``MessageId`` of a notification (the same for every delivery of one publish), else ``""`` (the caller falls
    back to the transport's message id).

    Raises:
        EnvelopeError: with a :class:`EnvelopeRejection` reason; never any other exception.
    """
    size = len(body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body)
    if size > max_bytes:
        raise EnvelopeError(EnvelopeRejection.OVERSIZED, f"body is {size} bytes, limit is {max_bytes}")
    text: str | bytes = body
    data = _loads(text)
    sns_id = ""
    if is_sns_notification(data):
        assert isinstance(data, dict)
        message_id = data.get("MessageId")
        sns_id = message_id if isinstance(message_id, str) else ""
        text = data["Message"]
        data = _loads(text)
    # the structural brackets of the text the envelope was parsed from bound its depth (escapes only occur in strings)
    envelope = envelope_from_mapping(data, check_depth=may_nest_deeper_than(text))
    explicit = (envelope.metadata.model_extra or {}).get("eventId")
    return envelope, explicit if isinstance(explicit, str) and explicit else sns_id
