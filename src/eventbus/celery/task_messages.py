"""How an event message becomes a Celery task message (in place), and the body SQS delivered."""

from __future__ import annotations

import json

from kombu.message import Message

from eventbus.celery.acks import sqs_message_id
from eventbus.core.dispatch import Decision

_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
_REPR_LIMIT = 1024


def as_task_message(message: Message, decision: Decision) -> None:
    """Turn an event message, in place, into a Celery protocol-2 message for its subscribed task.

    In place, so the delivery tag, acknowledgement and prefetch accounting stay the kombu
    message's own.
    """
    assert decision.envelope is not None
    assert decision.subscription is not None
    envelope = decision.envelope
    task_id = sqs_message_id(message)
    wire = envelope.metadata.to_wire()
    kwargs = {"payload": envelope.payload, "metadata": wire}
    safe_kwargs = repr({"metadata": envelope.metadata.to_log(wire), "payload": envelope.payload_for_log()})
    message.headers = {
        "lang": "py",
        "task": decision.subscription.handler,
        "id": task_id,
        "root_id": task_id,
        "parent_id": None,
        "group": None,
        "shadow": None,
        "eta": None,
        "expires": None,
        "retries": 0,
        "timelimit": [None, None],
        "argsrepr": "()",
        "kwargsrepr": safe_kwargs[:_REPR_LIMIT],
        "origin": f"eventbus:{envelope.metadata.publisher_name}",
        "ignore_result": True,
        # the same for every delivery of one event (idempotent handlers deduplicate on it)
        "eventbus_event_id": decision.event_id or task_id,
    }
    # W3C trace context as Celery task headers: OpenTelemetry's Celery instrumentation, when the user runs it, parents
    # its task span on the event's producer instead of starting a new trace
    if envelope.metadata.traceparent:
        message.headers["traceparent"] = envelope.metadata.traceparent
        if envelope.metadata.tracestate:
            message.headers["tracestate"] = envelope.metadata.tracestate
    decoded = [[], kwargs, dict(_EMBED)]
    message.body = json.dumps(decoded).encode()  # what the pool process gets and decodes
    message.content_type = "application/json"
    message.content_encoding = "utf-8"
    # what Celery's request reads in this process: the same structure, not decoded again from the body
    message._decoded_cache = decoded


def raw_body(message: Message) -> str | bytes:
    """The message's body exactly as SQS delivered it (what kombu made of it only when SQS's is unknown).

    An event is judged on the bytes its producer sent: a body that merely looks like one of kombu's own envelopes
    (``{"properties": ..., "body": ...}``) is no task message and must not be unwrapped into something else.
    """
    body = (message.delivery_info.get("sqs_message") or {}).get("Body")
    if isinstance(body, str):
        return body
    return message.body if isinstance(message.body, (str, bytes)) else b""
