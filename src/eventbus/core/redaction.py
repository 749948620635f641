"""Keeping secrets and personal data out of logs, error texts and monitoring: which values, and a redactor.

The sensitive values of an event are its ``metadata.authorization`` (the key in any case, and the bare token of a
``Bearer``-style header), and, in a payload marked ``containsPersonalData``, every text of :data:`MIN_TEXT_LENGTH`
characters or more, every number of :data:`MIN_NUMBER_DIGITS` digits or more, and every key, however deep. A
:class:`Redactor` holds the values of the events a process is handling right now, plus recent ones (failure logs are
written after a handler returned), and replaces them in any text with ``***``.

Values are found in any case and spelling (escaped by ``repr`` or JSON) by :mod:`eventbus.core.secret_search`, at a
cost set by the length of the text, never by the number of values held; payload keys shaped like field names
(``retry``, ``email``) are found as spelled only, so that Celery's ``Retry in 1s`` stays readable. Holding or
releasing a message costs time proportional to its own values. Recent values are bounded by number
(:data:`RECENT_VALUES`); values of messages being handled are never dropped.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from eventbus.core.envelope import Envelope, is_authorization_key, is_sns_notification
from eventbus.core.secret_search import MIN_TEXT_LENGTH, ExactSpelling, SecretIndex, ValueGroup, redact

__all__ = [
    "MIN_NUMBER_DIGITS",
    "MIN_TEXT_LENGTH",
    "RECENT_VALUES",
    "ExactSpelling",
    "Redactor",
    "SecretIndex",
    "redact",
    "sensitive_values",
    "sensitive_values_in_body",
    "sensitive_values_of",
]
#: Numbers in personal payloads are redacted from this many digits on (phone numbers, account numbers).
MIN_NUMBER_DIGITS: Final = 6
#: Values a :class:`Redactor` keeps of messages no longer being handled, summed over them (by default).
RECENT_VALUES: Final = 50_000

#: A payload key shaped like a field name.
_FIELD_LIKE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def sensitive_values(metadata: Mapping[str, Any], payload: object) -> set[str]:
    """The values of one event that must never be logged: authorization, and personal payload leaves and keys."""
    values: set[str] = set()
    for key, value in metadata.items():
        if is_authorization_key(key):
            values.update(_authorization_values(value))
    if metadata.get("containsPersonalData") is True:
        texts, keys = _personal_values(payload)
        values.update(texts)
        values.update(ExactSpelling(key) for key in keys if key not in values)
    return values


def sensitive_values_of(envelope: Envelope) -> set[str]:
    """:func:`sensitive_values` of a decoded envelope (without serialising its metadata)."""
    metadata = envelope.metadata
    wire: dict[str, Any] = {k: v for k, v in (metadata.model_extra or {}).items() if is_authorization_key(k)}
    wire["authorization"] = metadata.authorization.get_secret_value()
    if not any(wire.values()) and not metadata.contains_personal_data:
        return set()
    wire["containsPersonalData"] = metadata.contains_personal_data
    return sensitive_values(wire, envelope.payload)


def sensitive_values_in_body(body: str | bytes, max_bytes: int) -> set[str]:
    """Best effort for a message that is no valid event: the sensitive values of whatever envelope it resembles."""
    if len(body) > max_bytes:
        return set()
    try:
        data = json.loads(body)
        if is_sns_notification(data):
            data = json.loads(data["Message"])
    except (ValueError, RecursionError, TypeError, KeyError):
        return set()
    if not isinstance(data, dict) or not isinstance(data.get("metadata"), dict):
        return set()
    return sensitive_values(data["metadata"], data.get("payload"))


def _authorization_values(value: object) -> Iterator[str]:
    if not isinstance(value, str):
        yield from _personal_values(value)[0]  # not a header a producer should send; hide whatever it holds
        return
    if len(value) >= MIN_TEXT_LENGTH:
        yield value
    scheme_and_credentials = value.split(None, 1)
    if len(scheme_and_credentials) == 2 and len(credentials := scheme_and_credentials[1].strip()) >= MIN_TEXT_LENGTH:
        yield credentials


def _personal_values(value: object) -> tuple[set[str], set[str]]:
    """Every text and long number in ``value`` (dict keys that are not field-like included), and field-like keys.

    No limit on the walk: a message body is bounded (``MAX_MESSAGE_BYTES``), so is the number of its leaves.
    """
    texts: set[str] = set()
    keys: set[str] = set()
    stack, seen = [value], set()
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if len(item) >= MIN_TEXT_LENGTH:
                texts.add(item)
        elif isinstance(item, bool):
            continue
        elif isinstance(item, (int, float)):
            try:
                text = str(item)
            except ValueError:  # an int too long to print cannot be logged either
                continue
            if sum(ch.isdigit() for ch in text) >= MIN_NUMBER_DIGITS:
                texts.add(text)
        elif isinstance(item, (Mapping, list, tuple)):
            if id(item) in seen:  # shared or cyclic (Python values only: JSON has neither)
                continue
            seen.add(id(item))
            if isinstance(item, Mapping):
                for key, child in item.items():
                    stack.append(child)
                    if isinstance(key, str) and _FIELD_LIKE.fullmatch(key):
                        if len(key) >= MIN_TEXT_LENGTH:
                            keys.add(key)
                    else:
                        stack.append(key)
            else:
                stack.extend(item)
    return texts, keys


class Redactor:
    """The sensitive values a process holds now (and held recently); replaces them in texts. Thread-safe.

    Values held (:meth:`holding`) stay until released; released and remembered ones join the recent groups, of
    which the oldest go once there are more than ``recent`` groups or more than ``recent_values`` values in them
    (the newest group stays however large).
    """

    def __init__(self, recent: int = 32, recent_values: int = RECENT_VALUES) -> None:
        # re-entrant: a signal handler that logs while its thread redacts or holds must not wait for itself
        self._lock = threading.RLock()
        self._index = SecretIndex()
        self._recent: deque[ValueGroup] = deque()
        self._recent_size = 0
        self._recent_limit = recent
        self._recent_values = recent_values

    def __bool__(self) -> bool:
        return bool(self._index)

    @contextmanager
    def holding(self, values: Iterable[str]) -> Iterator[None]:
        """Redact ``values`` during the block and for a little while after (they join the recent ones)."""
        group = ValueGroup.of(values)
        if not group:
            yield
            return
        with self._lock:
            self._index.add(group)
        try:
            yield
        finally:
            with self._lock:
                self._keep_recent(group)

    def remember(self, values: Iterable[str]) -> None:
        """Redact ``values`` for a little while (until enough newer ones are remembered)."""
        group = ValueGroup.of(values)
        if group:
            with self._lock:
                self._index.add(group)
                self._keep_recent(group)

    def _keep_recent(self, group: ValueGroup) -> None:
        # ``group`` is in the index already; it becomes the newest recent group
        self._recent.append(group)
        self._recent_size += len(group)
        recent = self._recent
        while recent and (
            len(recent) > self._recent_limit or (len(recent) > 1 and self._recent_size > self._recent_values)
        ):
            oldest = recent.popleft()
            self._recent_size -= len(oldest)
            self._index.discard(oldest)

    def redact(self, text: str) -> str:
        """``text`` with every held or recent value replaced by ``***``."""
        if not self._index:
            return text
        with self._lock:
            return self._index.redact(text)
