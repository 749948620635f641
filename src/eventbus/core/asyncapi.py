"""The AsyncAPI 3.0 document of a service: what it publishes and what it subscribes to, as a JSON-ready dict.

Pure: pydantic only, no I/O. :func:`asyncapi_document` takes the service's :class:`~eventbus.core.topology.Topology`
(its topic, queue and dead-letter queue), the events it subscribes to (event name -> payload class, ``None`` when the
handler declared none) and the payload classes it publishes, and returns:

- two channels: ``topic`` (the SNS topic the service publishes to, address its name, an ``sns`` binding) and
  ``queue`` (the service's SQS queue, subscribed to the topic, an ``sqs`` binding with its dead-letter queue);
- one operation per event: ``send`` on ``topic`` for each published event, ``receive`` on ``queue`` for each
  subscribed one;
- one message per event name: ``headers`` the envelope's metadata (its wire keys, ``eventName`` fixed to the
  message's name), ``payload`` the payload class's JSON Schema (pydantic's validation schema, aliases applied; a
  free-form object when the handler declared no class);
- ``components/schemas``: every model's schema, nested models and enums included (pydantic's ``$defs``, referenced
  as ``#/components/schemas/<name>``), the metadata, and ``EventEnvelope``, the wire form
  ``{"metadata": ..., "payload": ...}``.

On the wire an event is one JSON object, ``{"metadata": {...}, "payload": {...}}``: AsyncAPI headers here are the
``metadata`` object, not SNS message attributes (the publisher sets ``eventName``, and ``ExtendedPayloadSize`` on a
claim-checked event). The document's description says so, and the queue's says which field its filter matches.
``metadata.authorization`` is described as a secret, with no example or default value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from pydantic.json_schema import models_json_schema

from eventbus.core.envelope import Metadata
from eventbus.core.payload import EventPayload
from eventbus.core.topology import FilterScope, Topology
from eventbus.errors import ConfigurationError

__all__ = ["ASYNCAPI_VERSION", "HEADER_DESCRIPTIONS", "asyncapi_document", "component_key"]

ASYNCAPI_VERSION: Final = "3.0.0"
_SCHEMAS: Final = "#/components/schemas/"
#: AsyncAPI's pattern for the keys of ``components``.
_KEY_CHARACTERS: Final = re.compile(r"[^A-Za-z0-9.\-_]")
_SNS_BINDING_VERSION: Final = "0.1.0"
_SQS_BINDING_VERSION: Final = "0.2.0"

#: What each metadata key (header) means; every field of :class:`~eventbus.core.envelope.Metadata` has one.
HEADER_DESCRIPTIONS: Final[Mapping[str, str]] = {
    "eventName": "The event's name: what subscribers filter and dispatch on (the SNS filter policy matches it).",
    "entityId": "The id of the entity the event is about, as text ('' when none).",
    "publisherName": "The service that published the event.",
    "publishDate": "When the event was published: an ISO 8601 timestamp in UTC, without an offset.",
    "containsPersonalData": "True when the payload carries personal data: consumers must not log it.",
    "traceparent": "W3C Trace Context traceparent of the span that published the event ('' when none).",
    "tracestate": "W3C Trace Context tracestate that goes with traceparent ('' when none).",
    "errorCode": "On a failure event: the code of the error that failed the work ('' otherwise).",
    "errorOrigin": "On a failure event: where the error happened, service.task ('' otherwise).",
    "authorization": (
        "A credential the producer forwards to consumers (for example a bearer token). Secret: eventbus never logs "
        "it, and consumers must not log it either. No example is given on purpose."
    ),
}

#: What a subscription's filter policy matches, by its scope (the ``eventName`` attribute: claim-check on).
_FILTER_FIELD: Final = {
    FilterScope.BODY: "metadata.eventName",
    FilterScope.ATTRIBUTES: "the eventName message attribute",
}

_WIRE_FORMAT = (
    "**Wire format.** Every event is one JSON object, the SNS message body: "
    '`{"metadata": {...}, "payload": {...}}` (schema `{envelope}`). With raw delivery off, SQS delivers it as the '
    "`Message` string of an SNS notification. In this document a message's `headers` describe the envelope's "
    "`metadata` object and its `payload` the envelope's `payload` object: they are not SNS or SQS message "
    "attributes. The publisher sets one message attribute on every event, `eventName` (the event's name, as in "
    "`metadata.eventName`), and on a claim-checked event `ExtendedPayloadSize` (the body's size in bytes): an event "
    "over the claim-check threshold is stored in S3 and its message body is the pointer of AWS's extended clients, "
    '`["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": ..., "s3Key": ...}]`. The attributes '
    "reach SQS as message attributes with raw delivery on, in the notification's `MessageAttributes` with it off. "
    "Each subscription's filter policy matches `metadata.eventName` in the body, or the `eventName` attribute "
    "(see the queue's description). "
    "Unknown metadata keys are kept (for example `eventId`, which deduplication uses when present).\n\n"
    "**Secrets and personal data.** `metadata.authorization` is a secret: it is never given an example. Events "
    "whose payload class contains personal data are tagged `containsPersonalData` and carry "
    "`containsPersonalData: true` in their metadata: do not log their payloads."
)


def component_key(name: str, taken: Iterable[str] = ()) -> str:
    """``name`` as a key AsyncAPI accepts in ``components`` (``[A-Za-z0-9.-_]``), made unique among ``taken``."""
    key = _KEY_CHARACTERS.sub("_", name) or "_"
    used = set(taken)
    candidate, n = key, 2
    while candidate in used:
        candidate, n = f"{key}_{n}", n + 1
    return candidate


def asyncapi_document(
    topology: Topology,
    *,
    service: str,
    version: str,
    subscribed: Mapping[str, type[EventPayload] | None],
    published: Iterable[type[EventPayload]],
    description: str = "",
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of a service (a JSON-ready dict; see the module docstring for its shape).

    Raises:
        ConfigurationError: two different payload classes for one event name (published twice, or published with
            one class and subscribed with another), or a topology without a topic.
    """
    if not topology.publishes_to:
        raise ConfigurationError("the topology has no topic to publish to: set EVENTBUS_TOPIC or EVENTBUS_TOPIC_ARN")
    sent = _published_by_name(published)
    events = _payload_classes(sent, subscribed)
    classes = sorted({cls for cls in events.values() if cls is not None}, key=lambda c: (c.__module__, c.__qualname__))
    refs, schemas = _schemas(classes)
    metadata_ref = refs[Metadata]
    envelope_key = component_key("EventEnvelope", schemas)
    schemas[envelope_key] = _envelope_schema(metadata_ref)

    keys: dict[str, str] = {}
    for event in sorted(events):
        keys[event] = component_key(event, keys.values())
    messages = {keys[event]: _message(event, events[event], refs, metadata_ref) for event in sorted(events)}

    topic = topology.publishes_to[0]
    queue = topology.queue
    operations: dict[str, Any] = {}
    for event in sorted(sent):
        operations[component_key(f"send.{event}", operations)] = _operation("send", "topic", keys[event], event)
    for event in sorted(subscribed):
        operations[component_key(f"receive.{event}", operations)] = _operation("receive", "queue", keys[event], event)

    intro = description or f"The events the service `{service}` publishes and subscribes to."
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": service,
            "version": version,
            "description": f"{intro}\n\n{_WIRE_FORMAT.replace('{envelope}', envelope_key)}",
        },
        "defaultContentType": "application/json",
        "channels": {
            "topic": {
                "address": topic,
                "title": f"SNS topic {topic}",
                "description": f"The SNS topic the service publishes its events to ({len(sent)} event names).",
                "messages": {keys[event]: _ref(f"#/components/messages/{keys[event]}") for event in sorted(sent)},
                "bindings": {"sns": {"name": topic, "bindingVersion": _SNS_BINDING_VERSION}},
            },
            "queue": {
                "address": queue.name,
                "title": f"SQS queue {queue.name}",
                "description": _queue_description(topology),
                "messages": {keys[event]: _ref(f"#/components/messages/{keys[event]}") for event in sorted(subscribed)},
                "bindings": {"sqs": _sqs_binding(topology)},
            },
        },
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def _published_by_name(published: Iterable[type[EventPayload]]) -> dict[str, type[EventPayload]]:
    by_name: dict[str, type[EventPayload]] = {}
    for cls in published:
        name = cls.get_event_name()
        other = by_name.setdefault(name, cls)
        if other is not cls:
            raise ConfigurationError(
                f"two payload classes publish the event {name!r}: {_class_path(other)} and {_class_path(cls)}; "
                "give one another event_name"
            )
    return by_name


def _payload_classes(
    sent: Mapping[str, type[EventPayload]], subscribed: Mapping[str, type[EventPayload] | None]
) -> dict[str, type[EventPayload] | None]:
    """Event name -> the one payload class that describes it (``None``: free-form)."""
    events: dict[str, type[EventPayload] | None] = dict(sent)
    for name, cls in subscribed.items():
        mine = events.get(name)
        if cls is not None and mine is not None and mine is not cls:
            raise ConfigurationError(
                f"the event {name!r} is published as {_class_path(mine)} and handled as {_class_path(cls)}; "
                "one event name has one payload class"
            )
        events[name] = mine or cls
    return events


def _schemas(classes: list[type[EventPayload]]) -> tuple[dict[type[Any], dict[str, Any]], dict[str, Any]]:
    """Each class's reference and every schema, with ``$defs`` hoisted into ``components/schemas``."""
    pairs: list[tuple[type[Any], Any]] = [(Metadata, "serialization")]
    pairs.extend((cls, "validation") for cls in classes)
    keymap, document = models_json_schema(pairs, by_alias=True, ref_template=_SCHEMAS + "{model}")
    schemas: dict[str, Any] = dict(document.get("$defs", {}))
    refs = {cls: dict(ref) for (cls, _mode), ref in keymap.items()}
    metadata_key = refs[Metadata]["$ref"].removeprefix(_SCHEMAS)
    schemas[metadata_key] = _headers_schema(schemas[metadata_key])
    return refs, schemas


def _headers_schema(generated: dict[str, Any]) -> dict[str, Any]:
    """The metadata's schema with a description per key and nothing of ``authorization`` but its type."""
    properties: dict[str, Any] = {}
    for key, schema in generated.get("properties", {}).items():
        described = {k: v for k, v in schema.items() if k != "title"}
        if key == "authorization":
            # a secret: no default, no example, whatever pydantic derives
            described = {"type": "string", "format": "password", "writeOnly": True}
        elif key == "publishDate":
            described["format"] = "date-time"
        described["description"] = HEADER_DESCRIPTIONS.get(key, schema.get("title", key))
        properties[key] = described
    return {
        "title": "Event metadata",
        "description": (
            "The envelope's `metadata` object (camelCase keys). Keys not listed here are kept and passed on."
        ),
        "type": "object",
        "properties": properties,
        "required": list(generated.get("required", ["eventName"])),
        "additionalProperties": True,
    }


def _envelope_schema(metadata_ref: Mapping[str, str]) -> dict[str, Any]:
    return {
        "title": "Event envelope (the wire form)",
        "description": "One event as it is published: the SNS message body. `payload` is the message's payload.",
        "type": "object",
        "properties": {"metadata": dict(metadata_ref), "payload": {"type": "object"}},
        "required": ["metadata", "payload"],
    }


def _message(
    event: str,
    cls: type[EventPayload] | None,
    refs: Mapping[type[Any], Mapping[str, str]],
    metadata_ref: Mapping[str, str],
) -> dict[str, Any]:
    personal = cls is not None and cls.contains_personal_data
    fixed: dict[str, Any] = {"eventName": {"const": event}}
    if personal:
        fixed["containsPersonalData"] = {"const": True}
    headers = {"type": "object", "allOf": [dict(metadata_ref), {"type": "object", "properties": fixed}]}
    message: dict[str, Any] = {
        "name": event,
        "title": event,
        "contentType": "application/json",
        "headers": headers,
    }
    if cls is None:
        message["summary"] = f"The event {event}: its handler declares no payload class."
        message["payload"] = {
            "type": "object",
            "description": "Free-form: the handler declares no payload class, so any JSON object is accepted.",
        }
    else:
        doc = (cls.__doc__ or "").strip().splitlines()
        message["summary"] = doc[0] if doc else f"The event {event} ({cls.__name__})."
        message["payload"] = dict(refs[cls])
        message["x-eventbus-payload-class"] = _class_path(cls)
    if personal:
        message["tags"] = [{"name": "containsPersonalData", "description": "The payload carries personal data."}]
        message["description"] = "Contains personal data: consumers must not log the payload."
    return message


def _operation(action: str, channel: str, key: str, event: str) -> dict[str, Any]:
    verb = "Publishes" if action == "send" else "Receives"
    return {
        "action": action,
        "channel": _ref(f"#/channels/{channel}"),
        "title": f"{verb} {event}",
        "messages": [_ref(f"#/channels/{channel}/messages/{key}")],
    }


def _queue_description(topology: Topology) -> str:
    queue = topology.queue
    parts = [f"The service's SQS queue; failed events move to `{queue.dead_letter_name}` "]
    parts.append(f"after {queue.max_receive_count} receives.")
    for subscription in topology.subscriptions:
        names = subscription.event_names
        field = _FILTER_FIELD[subscription.filter_scope]
        which = "every event" if names is None else f"{len(names)} event names (filter on {field})"
        delivery = "raw delivery" if subscription.raw_delivery else "SNS notifications"
        parts.append(f" Subscribed to the topic `{subscription.topic}`: {which}, as {delivery}.")
    return "".join(parts)


def _sqs_binding(topology: Topology) -> dict[str, Any]:
    queue = topology.queue
    return {
        "queue": {
            "name": queue.name,
            "fifoQueue": False,
            "visibilityTimeout": queue.visibility_timeout,
            "redrivePolicy": {
                "deadLetterQueue": {"name": queue.dead_letter_name},
                "maxReceiveCount": queue.max_receive_count,
            },
        },
        "deadLetterQueue": {
            "name": queue.dead_letter_name,
            "fifoQueue": False,
            "messageRetentionPeriod": queue.dead_letter_retention,
        },
        "bindingVersion": _SQS_BINDING_VERSION,
    }


def _ref(target: str) -> dict[str, str]:
    return {"$ref": target}


def _class_path(cls: type[Any]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
