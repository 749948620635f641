"""Keeping secrets and personal data out of logs, error texts and monitoring: which values, and a redactor.

The sensitive values of an event are its ``metadata.authorization`` (the key in any case, and the bare token of a
``Bearer``-style header), and, in a payload marked ``containsPersonalData``, every text of :data:`MIN_TEXT_LENGTH`
characters or more, every number of :data:`MIN_NUMBER_DIGITS` digits or more, and every key, however deep. A
:class:`Redactor` holds the values of the events a process is handling right now, plus recent ones (failure logs are
written after a handler returned), and replaces them in any text with ``***``. A value is found

* in any case: texts and values are compared case-folded (``.lower()``, ``.upper()``, ``.title()`` of a value);
* escaped: a text with backslashes is searched as it is and decoded once, twice and three times, undoing the escapes
  of ``repr`` (``\\'``, ``\\n``, ``\\x07``, ``\\u2028``), of ``json.dumps`` with ``ensure_ascii`` on or off
  (``\\"``, ``\\u00e9``, surrogate pairs), of Celery's ``saferepr`` and of ``repr`` of UTF-8 bytes (``\\xc3\\xa9``):
  a value in a JSON text in a JSON text in a ``repr`` is found too;
* except payload keys shaped like field names (``retry``, ``email``): those are found as spelled only, so that
  Celery's ``Retry in 1s`` stays readable. Keys that are not identifiers (addresses, phone numbers) are values.

Cost. The values are indexed by their first :data:`MIN_TEXT_LENGTH` case-folded characters, with the distinct lengths
of the values that start so. A text is scanned once per decoding: at each position one look-up of the characters
there and, only where some value starts so, one hash look-up per distinct length that fits in the rest of the text.
A log line costs time proportional to its length (its square at worst, if held values share their first characters
and differ in length), never to the number of values held. Holding or releasing a message costs time proportional to
its own values. Recent values are bounded by number (:data:`RECENT_VALUES`); values of messages being handled are
never dropped.
"""

from __future__ import annotations

import json
import re
import threading
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

from eventbus.core.envelope import REDACTED, Envelope, is_authorization_key, is_sns_notification

#: Shorter texts are not redacted: replacing "yes" or "42" everywhere would mangle logs and protect nothing.
MIN_TEXT_LENGTH: Final = 4
#: Numbers in personal payloads are redacted from this many digits on (phone numbers, account numbers).
MIN_NUMBER_DIGITS: Final = 6
#: Values a :class:`Redactor` keeps of messages no longer being handled, summed over them (by default).
RECENT_VALUES: Final = 50_000

#: Below this many held values, a text is searched for each of them (C speed) instead of scanned position by
#: position; either way a bounded multiple of the text's length.
_DIRECT_SEARCH_LIMIT: Final = 64
#: How many times a text is decoded: a value in JSON in JSON in a repr (an SNS notification logged with %r).
_DECODINGS: Final = 3
#: The escapes of repr (str and bytes), json.dumps and Celery's saferepr.
_ESCAPE: Final = re.compile(
    r"\\(?:u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})"  # a JSON surrogate pair
    r"|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})"
    r"|(x[0-9a-fA-F]{2}(?:\\x[0-9a-fA-F]{2})*)"  # a run of \xHH: UTF-8 bytes, or Latin-1 characters
    r"|([nrtbf\\'\"/]))"
)
_SINGLE: Final = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", "\\": "\\", "'": "'", '"': '"', "/": "/"}
#: A payload key shaped like a field name.
_FIELD_LIKE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ExactSpelling(str):
    """A sensitive value found as spelled only (case-sensitive, unescaped): a payload key shaped like a field name."""

    __slots__ = ()


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


def redact(text: str, values: Iterable[str]) -> str:
    """``text`` with each of ``values`` (in any case and spelling, see the module) replaced by ``***``."""
    return SecretIndex(values).redact(text)


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


def _fold(text: str) -> str:
    """Case-folded so that ``_fold(t.lower()) == _fold(t.upper()) == _fold(t)`` for every character."""
    return text.lower() if text.isascii() else text.upper().casefold()


@dataclass(frozen=True, slots=True)
class _Group:
    """The values of one message as the index holds them: case-folded, and exact (field-like keys)."""

    folded: frozenset[str]
    exact: frozenset[str]

    @classmethod
    def of(cls, values: Iterable[str]) -> _Group:
        folded: set[str] = set()
        exact: set[str] = set()
        for value in values:
            if len(value) < MIN_TEXT_LENGTH:
                continue
            if isinstance(value, ExactSpelling):
                exact.add(str(value))
            else:
                folded.add(_fold(value))
        return cls(frozenset(folded), frozenset(exact))

    def __len__(self) -> int:
        return len(self.folded) + len(self.exact)


class _Lengths:
    """The distinct lengths of the values that start with the same characters (sorted), and how many have each."""

    __slots__ = ("counts", "lengths")

    def __init__(self, length: int) -> None:
        self.lengths = [length]
        self.counts = [1]

    def add(self, length: int) -> None:
        at = bisect_left(self.lengths, length)
        if at < len(self.lengths) and self.lengths[at] == length:
            self.counts[at] += 1
        else:
            self.lengths.insert(at, length)
            self.counts.insert(at, 1)

    def remove(self, length: int) -> None:
        at = bisect_left(self.lengths, length)
        self.counts[at] -= 1
        if not self.counts[at]:
            del self.lengths[at], self.counts[at]


class SecretIndex:
    """Sensitive values, indexed by their first characters: finds them all in a text in one pass (see the module).

    Not thread-safe alone (:class:`Redactor` locks around it). Each value is counted: added by several groups, it
    stays until each of them is discarded.
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._folded: dict[str, int] = {}
        self._exact: dict[str, int] = {}
        #: first MIN_TEXT_LENGTH case-folded characters -> lengths of the values (both kinds) starting so
        self._starts: dict[str, _Lengths] = {}
        self._add(_Group.of(values))

    def __bool__(self) -> bool:
        return bool(self._folded or self._exact)

    def __len__(self) -> int:
        return len(self._folded) + len(self._exact)

    def _add(self, group: _Group) -> None:
        starts = self._starts
        for counts, values, exact in ((self._folded, group.folded, False), (self._exact, group.exact, True)):
            for value in values:
                count = counts.get(value, 0)
                counts[value] = count + 1
                if count:
                    continue
                key = _fold(value) if exact else value
                lengths = starts.get(key[:MIN_TEXT_LENGTH])
                if lengths is None:
                    starts[key[:MIN_TEXT_LENGTH]] = _Lengths(len(key))
                else:
                    lengths.add(len(key))

    def _discard(self, group: _Group) -> None:
        starts = self._starts
        for counts, values, exact in ((self._folded, group.folded, False), (self._exact, group.exact, True)):
            for value in values:
                count = counts.pop(value)
                if count > 1:
                    counts[value] = count - 1
                    continue
                key = _fold(value) if exact else value
                lengths = starts[key[:MIN_TEXT_LENGTH]]
                lengths.remove(len(key))
                if not lengths.lengths:
                    del starts[key[:MIN_TEXT_LENGTH]]

    def redact(self, text: str) -> str:
        """``text`` with every value held replaced by ``***``, in any case, escaped or not."""
        if not self:
            return text
        spans: list[tuple[int, int]] = []
        for view in _decodings(text):
            folded, folding = _fold_with_origin(view.text)
            found = self._search if len(self) <= _DIRECT_SEARCH_LIMIT else self._scan
            for start, end in found(folded, view.text, folding):
                if folding is not None:
                    start, end = folding[start], folding[end - 1] + 1
                spans.append(view.original(start, end))
        return _replaced(text, spans)

    def _search(self, folded: str, text: str, folding: list[int] | None) -> Iterator[tuple[int, int]]:
        for value in self._folded:
            yield from _occurrences(folded, value)
        for value in self._exact:
            for start, end in _occurrences(folded, _fold(value)):
                if _unfolded(text, folding, start, end) == value:
                    yield start, end

    def _scan(self, folded: str, text: str, folding: list[int] | None) -> Iterator[tuple[int, int]]:
        size, starts, held, exact = len(folded), self._starts, self._folded, self._exact
        candidates = [i for i in range(size - MIN_TEXT_LENGTH + 1) if folded[i : i + MIN_TEXT_LENGTH] in starts]
        for start in candidates:
            lengths = starts[folded[start : start + MIN_TEXT_LENGTH]].lengths
            # the lengths that fit, longest first: the longest value found here covers the shorter ones
            for at in range(bisect_right(lengths, size - start) - 1, -1, -1):
                end = start + lengths[at]
                if folded[start:end] in held or (exact and _unfolded(text, folding, start, end) in exact):
                    yield start, end
                    break


@dataclass(frozen=True, slots=True)
class _View:
    """A text as it is or decoded, and where each of its characters came from in the original text."""

    text: str
    starts: list[int] | None = None  # None: the original text itself
    ends: list[int] | None = None

    def original(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original text that ``text[start:end]`` came from."""
        if self.starts is None or self.ends is None:
            return start, end
        return self.starts[start], self.ends[end - 1]


def _decodings(text: str) -> Iterator[_View]:
    """``text``, then decoded while it has escapes, up to :data:`_DECODINGS` times."""
    view = _View(text)
    yield view
    for _ in range(_DECODINGS):
        if "\\" not in view.text:
            return
        decoded = _decoded(view)
        if decoded.text == view.text:
            return
        yield decoded
        view = decoded


def _decoded(view: _View) -> _View:
    """``view`` with its escapes undone; each character maps to the escape sequence it came from."""
    text = view.text
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    kept = 0
    for match in _ESCAPE.finditer(text):
        pieces.append(text[kept : match.start()])
        starts.extend(range(kept, match.start()))
        ends.extend(range(kept + 1, match.start() + 1))
        for char, start, end in _unescaped(match):
            pieces.append(char)
            starts.append(start)
            ends.append(end)
        kept = match.end()
    pieces.append(text[kept:])
    starts.extend(range(kept, len(text)))
    ends.extend(range(kept + 1, len(text) + 1))
    if view.starts is not None and view.ends is not None:  # map through the previous decoding to the original
        outer_starts, outer_ends = view.starts, view.ends
        starts = [outer_starts[i] for i in starts]
        ends = [outer_ends[i - 1] for i in ends]
    return _View("".join(pieces), starts, ends)


def _unescaped(match: re.Match[str]) -> Iterator[tuple[str, int, int]]:
    """The characters one escape sequence stands for, each with the span of the text it came from."""
    high, low, code, long_code, run, single = match.groups()
    start, end = match.span()
    if high is not None:
        yield chr(0x10000 + ((int(high, 16) - 0xD800) << 10) + int(low, 16) - 0xDC00), start, end
    elif code is not None:
        yield chr(int(code, 16)), start, end
    elif long_code is not None and int(long_code, 16) <= 0x10FFFF:
        yield chr(int(long_code, 16)), start, end
    elif run is not None:
        data = bytes.fromhex(run.replace("\\x", "").replace("x", ""))
        try:
            chars, utf8 = data.decode("utf-8"), True
        except UnicodeDecodeError:  # repr of a text writes non-printable characters up to U+00FF as \xHH
            chars, utf8 = data.decode("latin-1"), False
        for char in chars:
            size = 4 * len(char.encode("utf-8")) if utf8 else 4  # one \xHH per byte
            yield char, start, start + size
            start += size
    elif single is not None:
        yield _SINGLE[single], start, end
    else:  # \U beyond Unicode: no escape, the characters stay
        for offset, char in enumerate(match.group()):
            yield char, start + offset, start + offset + 1


def _fold_with_origin(text: str) -> tuple[str, list[int] | None]:
    """``text`` case-folded, and for each folded character the index of its original one (``None``: the same)."""
    if text.isascii():
        return text.lower(), None
    folded = text.upper().casefold()
    if len(folded) == len(text):  # every character folds to one: positions are the same
        return folded, None
    origin: list[int] = []
    for index, char in enumerate(text):
        origin.extend([index] * len(char.upper().casefold()))
    return folded, origin


def _occurrences(text: str, part: str) -> Iterator[tuple[int, int]]:
    start = text.find(part)
    while start >= 0:
        yield start, start + len(part)
        start = text.find(part, start + 1)


def _unfolded(text: str, folding: list[int] | None, start: int, end: int) -> str:
    return text[start:end] if folding is None else text[folding[start] : folding[end - 1] + 1]


def _replaced(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with the ``spans`` replaced, overlapping or touching ones as one."""
    if not spans:
        return text
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    pieces, kept = [], 0
    for start, end in merged:
        pieces += [text[kept:start], REDACTED]
        kept = end
    pieces.append(text[kept:])
    return "".join(pieces)


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
        self._recent: deque[_Group] = deque()
        self._recent_size = 0
        self._recent_limit = recent
        self._recent_values = recent_values

    def __bool__(self) -> bool:
        return bool(self._index)

    @contextmanager
    def holding(self, values: Iterable[str]) -> Iterator[None]:
        """Redact ``values`` during the block and for a little while after (they join the recent ones)."""
        group = _Group.of(values)
        if not group:
            yield
            return
        with self._lock:
            self._index._add(group)
        try:
            yield
        finally:
            with self._lock:
                self._keep_recent(group)

    def remember(self, values: Iterable[str]) -> None:
        """Redact ``values`` for a little while (until enough newer ones are remembered)."""
        group = _Group.of(values)
        if group:
            with self._lock:
                self._index._add(group)
                self._keep_recent(group)

    def _keep_recent(self, group: _Group) -> None:
        # ``group`` is in the index already; it becomes the newest recent group
        self._recent.append(group)
        self._recent_size += len(group)
        recent = self._recent
        while recent and (
            len(recent) > self._recent_limit or (len(recent) > 1 and self._recent_size > self._recent_values)
        ):
            oldest = recent.popleft()
            self._recent_size -= len(oldest)
            self._index._discard(oldest)

    def redact(self, text: str) -> str:
        """``text`` with every held or recent value replaced by ``***``."""
        if not self._index:
            return text
        with self._lock:
            return self._index.redact(text)
