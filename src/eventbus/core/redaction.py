"""Keeping secrets and personal data out of logs, error texts and monitoring: which values, and a redactor.

The sensitive values of an event are its ``metadata.authorization`` (and the bare token of a ``Bearer``-style
header), and every text or long number in a payload marked ``containsPersonalData``. A :class:`Redactor` holds the
values of the events a process is handling right now, plus a few recent ones (failure logs are written after a
handler returned), and replaces them in any text with ``***``.
"""

from __future__ import annotations

import json
import threading
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from eventbus.core.envelope import REDACTED, Envelope, is_sns_notification

#: Shorter texts are not redacted: replacing "yes" or "42" everywhere would mangle logs and protect nothing.
MIN_TEXT_LENGTH: Final = 4
#: Numbers in personal payloads are redacted from this many digits on (phone numbers, account numbers).
MIN_NUMBER_DIGITS: Final = 6
_WALK_LIMIT: Final = 10_000


def sensitive_values(metadata: Mapping[str, Any], payload: object) -> set[str]:
    """The values of one event that must never be logged: authorization, and personal payload leaves."""
    values: set[str] = set()
    authorization = metadata.get("authorization")
    if isinstance(authorization, str) and len(authorization) >= MIN_TEXT_LENGTH:
        values.add(authorization)
        _scheme, _, credentials = authorization.partition(" ")
        if credentials and len(credentials) >= MIN_TEXT_LENGTH:
            values.add(credentials.strip())
    if metadata.get("containsPersonalData") is True:
        values.update(_leaves(payload))
    return values


def sensitive_values_of(envelope: Envelope) -> set[str]:
    """:func:`sensitive_values` of a decoded envelope (without serialising its metadata)."""
    metadata = envelope.metadata
    authorization = metadata.authorization.get_secret_value()
    if not authorization and not metadata.contains_personal_data:
        return set()
    wire = {"authorization": authorization, "containsPersonalData": metadata.contains_personal_data}
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


def redact(text: str, values: Iterable[str]) -> str:
    """``text`` with each of ``values`` replaced by ``***``."""
    for value in values:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def _leaves(value: object) -> Iterator[str]:
    stack, seen = [value], 0
    while stack and seen < _WALK_LIMIT:
        item = stack.pop()
        seen += 1
        if isinstance(item, str):
            if len(item) >= MIN_TEXT_LENGTH:
                yield item
        elif isinstance(item, bool):
            continue
        elif isinstance(item, (int, float)):
            text = str(item)
            if sum(ch.isdigit() for ch in text) >= MIN_NUMBER_DIGITS:
                yield text
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


class Redactor:
    """The sensitive values a process holds now (and held recently); replaces them in texts. Thread-safe."""

    def __init__(self, recent: int = 32) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._recent: deque[frozenset[str]] = deque()
        self._recent_limit = recent
        self._snapshot: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self._snapshot)

    @contextmanager
    def holding(self, values: Iterable[str]) -> Iterator[None]:
        """Redact ``values`` during the block and for a little while after (they join the recent ones)."""
        group = frozenset(values)
        if not group:
            yield
            return
        with self._lock:
            self._counts.update(group)
            self._refresh()
        try:
            yield
        finally:
            with self._lock:
                self._counts.subtract(group)
                self._remember(group)

    def remember(self, values: Iterable[str]) -> None:
        """Redact ``values`` for a little while (until enough newer ones are remembered)."""
        group = frozenset(values)
        if group:
            with self._lock:
                self._remember(group)

    def _remember(self, group: frozenset[str]) -> None:
        self._recent.append(group)
        self._counts.update(group)
        while len(self._recent) > self._recent_limit:
            self._counts.subtract(self._recent.popleft())
        self._refresh()

    def _refresh(self) -> None:
        self._snapshot = tuple(value for value, count in self._counts.items() if count > 0)
        if len(self._counts) > 4 * max(len(self._snapshot), 64):
            self._counts = Counter({value: count for value, count in self._counts.items() if count > 0})

    def redact(self, text: str) -> str:
        """``text`` with every held or recent value replaced by ``***``."""
        return redact(text, self._snapshot)
