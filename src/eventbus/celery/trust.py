"""The trust boundary of the event queue: which Celery task messages a worker runs.

A service's queue is subscribed to a topic other services publish to. With raw message delivery whatever is published
arrives unchanged, so without a boundary a body shaped like a Celery task message would run any task the worker has
registered (``celery.backend_cleanup`` included), with any arguments. A task message that arrives on the queue runs
only if:

1. it is well formed: a registered task, headers of the types Celery reads, a JSON body ``[args, kwargs, embed]``,
   nothing nested deeper than :data:`~eventbus.core.envelope.MAX_NESTING_DEPTH`;
2. and it was sent by a process of this service: it carries the HMAC-SHA256 signature that every task message of an
   app configured with ``EVENTBUS_SIGNING_KEY`` gets (:func:`install_signing`; over the task name, id, ETA, expiry
   and the serialized body);
3. or, when the worker has no signing key, it is a retry of a ``@subscribe`` task whose keyword arguments pass the
   checks an event would (a valid envelope here; the handler's payload class where the handler runs, which
   dead-letters a payload that fails it): such a message can do no more than publishing that event can.

Anything else is dead-lettered with its reason (``invalid-task-message``, ``unregistered-task``,
``unauthenticated-task``). Only JSON is accepted (``configure()`` pins ``accept_content``), so pickle and YAML never
reach a decoder.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Final

from kombu.message import Message
from kombu.serialization import dumps
from pydantic import SecretStr

from eventbus.core.envelope import (
    MAX_NESTING_DEPTH,
    envelope_from_mapping,
    may_nest_deeper_than,
    nesting_depth_exceeds,
)
from eventbus.errors import EnvelopeError, RefusedTask

#: The header that carries a task message's signature.
SIGNATURE_HEADER: Final = "eventbus_signature"
_SCHEME: Final = "v1:"

_TEXT = (str,)
_OPTIONAL_TEXT = (str, type(None))
#: Headers Celery's worker reads, and the types it can handle (others are passed through untouched).
_HEADER_TYPES: Final[Mapping[str, tuple[type, ...]]] = {
    "id": _TEXT,
    "task": _TEXT,
    "lang": _OPTIONAL_TEXT,
    "shadow": _OPTIONAL_TEXT,
    "root_id": _OPTIONAL_TEXT,
    "parent_id": _OPTIONAL_TEXT,
    "group": _OPTIONAL_TEXT,
    "eta": _OPTIONAL_TEXT,
    "expires": _OPTIONAL_TEXT,
    "argsrepr": _OPTIONAL_TEXT,
    "kwargsrepr": _OPTIONAL_TEXT,
    "origin": _OPTIONAL_TEXT,
    SIGNATURE_HEADER: _TEXT,
    "retries": (int,),
    "ignore_result": (bool, type(None)),
    "timelimit": (list, tuple, type(None)),
}
_NAME_LIMIT: Final = 200


def task_name_for_log(name: object) -> str:
    """A task name fit for a log line or a reason: printable, bounded."""
    text = name if isinstance(name, str) else type(name).__name__
    return ascii(text[:_NAME_LIMIT])


def signature(key: SecretStr, headers: Mapping[str, Any], body: bytes) -> str:
    """The signature of a task message: HMAC-SHA256 over task, id, eta, expires and the serialized body."""
    fields = (headers.get("task"), headers.get("id"), headers.get("eta"), headers.get("expires"))
    text = "\n".join("" if value is None else str(value) for value in fields).encode()
    digest = hmac.new(key.get_secret_value().encode(), text + b"\n" + body, hashlib.sha256).hexdigest()
    return _SCHEME + digest


def install_signing(app: Any, key: SecretStr) -> None:
    """Make every task message ``app`` sends carry its signature (retries, ``delay()``, canvas steps alike).

    Wraps this app's task sender only (``app.amqp.send_task_message``): other apps in the process are unaffected.
    The body is serialized here as the producer will serialize it (the task serializer is pinned to JSON).
    """
    amqp = app.amqp
    send = amqp.send_task_message
    if getattr(send, "eventbus_signing", False):
        return

    def send_signed(producer: Any, name: str, message: Any, *args: Any, **kwargs: Any) -> Any:
        serializer = kwargs.get("serializer") or app.conf.task_serializer
        _content_type, _encoding, body = dumps(message.body, serializer=serializer)  # type: ignore[no-untyped-call]
        raw = body if isinstance(body, bytes) else str(body).encode()
        message.headers[SIGNATURE_HEADER] = signature(key, message.headers, raw)
        return send(producer, name, message, *args, **kwargs)

    send_signed.eventbus_signing = True  # type: ignore[attr-defined]
    amqp.send_task_message = send_signed


def check_task_message(message: Message, tasks: Mapping[str, Any], key: SecretStr | None) -> None:
    """Raise :class:`RefusedTask` unless the worker may run this task message (see the module docstring).

    Decodes the body (kombu caches it, so Celery does not decode it again).
    """
    headers = message.headers
    name = headers.get("task")
    if not isinstance(name, str):
        raise RefusedTask("invalid-task-message: header 'task' is not a string")
    task = tasks.get(name)
    if task is None:
        raise RefusedTask(f"unregistered-task: no task {task_name_for_log(name)} in this worker")
    for header, types in _HEADER_TYPES.items():
        value = headers.get(header)
        if value is not None and not isinstance(value, types):
            raise RefusedTask(f"invalid-task-message: header {header!r} is a {type(value).__name__}")
    if not isinstance(headers.get("id"), str):
        raise RefusedTask("invalid-task-message: header 'id' is missing")
    if isinstance(headers.get("retries"), bool):
        raise RefusedTask("invalid-task-message: header 'retries' is a bool")
    _check_limits(headers.get("timelimit"))
    _check_dates(headers)
    if nesting_depth_exceeds((headers, message.properties), MAX_NESTING_DEPTH + 1):
        raise RefusedTask(f"invalid-task-message: headers nest more than {MAX_NESTING_DEPTH} levels")
    raw = _serialized(message)
    payload = _decode(message, raw)
    if key is not None:
        given = headers.get(SIGNATURE_HEADER)
        if not isinstance(given, str) or not hmac.compare_digest(given, signature(key, headers, raw)):
            raise RefusedTask(f"unauthenticated-task: task {task_name_for_log(name)} is not signed by this service")
        return
    subscription = task.subscription() if getattr(task, "eventbus_event_name", "") else None
    if subscription is None:
        raise RefusedTask(
            f"unauthenticated-task: task {task_name_for_log(name)} may only run from the event queue when signed "
            "(set EVENTBUS_SIGNING_KEY in the worker and in every process that sends tasks)"
        )
    args, kwargs, _embed = payload
    if args or set(kwargs) != {"metadata", "payload"}:
        raise RefusedTask("invalid-task-message: an event task takes exactly 'metadata' and 'payload'")
    try:
        # the envelope is checked here; the payload where the handler runs (once, as for any event)
        envelope_from_mapping(kwargs)
    except EnvelopeError as exc:
        raise RefusedTask(str(exc)) from None


def _serialized(message: Message) -> bytes:
    """The body as the sender serialized it (before any compression)."""
    body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
    compression = message.headers.get("compression")
    if compression:
        from kombu.compression import decompress

        body = bytes(decompress(body, compression))  # type: ignore[no-untyped-call]
    return body


def _check_limits(limits: object) -> None:
    if limits is None:
        return
    assert isinstance(limits, (list, tuple))
    if len(limits) != 2 or not all(
        limit is None or (isinstance(limit, (int, float)) and not isinstance(limit, bool)) for limit in limits
    ):
        raise RefusedTask("invalid-task-message: header 'timelimit' is not a pair of numbers")


def _check_dates(headers: Mapping[str, Any]) -> None:
    from celery.utils.time import maybe_iso8601

    for header in ("eta", "expires"):
        value = headers.get(header)
        if value:
            try:
                maybe_iso8601(value)
            except (ValueError, TypeError, OverflowError):
                raise RefusedTask(f"invalid-task-message: header {header!r} is not an ISO 8601 time") from None


def _decode(message: Message, raw: bytes) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    if message.content_type != "application/json":  # whatever the consumer's accept list says
        raise RefusedTask(f"invalid-task-message: content type {str(message.content_type)[:60]!a} is not JSON")
    try:
        payload = message.decode()  # type: ignore[no-untyped-call]
    except Exception as exc:  # ContentDisallowed, DecodeError (bad JSON, too deep for the parser), bad encodings
        raise RefusedTask(f"invalid-task-message: body cannot be decoded ({type(exc).__name__})") from None
    if not (
        isinstance(payload, (list, tuple))
        and len(payload) == 3
        and isinstance(payload[0], (list, tuple))
        and isinstance(payload[1], dict)
        and isinstance(payload[2], (dict, type(None)))
    ):
        raise RefusedTask("invalid-task-message: body is not [args, kwargs, embed]")
    if may_nest_deeper_than(raw) and nesting_depth_exceeds(payload):
        raise RefusedTask(f"invalid-task-message: body nests more than {MAX_NESTING_DEPTH} levels")
    return list(payload[0]), payload[1], payload[2] or {}
