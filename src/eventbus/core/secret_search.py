"""Finding sensitive values in a text, whatever their case or escaping, at a cost set by the text's length.

A value is found

* in any case: texts and values are compared case-folded (``.lower()``, ``.upper()``, ``.title()`` of a value);
* escaped: a text with backslashes is searched as it is and decoded once, twice and three times, undoing the escapes
  of ``repr`` (``\\'``, ``\\n``, ``\\x07``, ``\\u2028``), of ``json.dumps`` with ``ensure_ascii`` on or off
  (``\\"``, ``\\u00e9``, surrogate pairs), of Celery's ``saferepr`` and of ``repr`` of UTF-8 bytes
  (``\\xc3\\xa9``): a value in a JSON text in a JSON text in a ``repr`` is found too;
* except values marked :class:`ExactSpelling` (payload keys shaped like field names): those are found as spelled.

Cost. The values are indexed by their first :data:`MIN_TEXT_LENGTH` case-folded characters, with the distinct lengths
of the values that start so. A text is scanned once per decoding: at each position one look-up of the characters
there and, only where some value starts so, one hash look-up per distinct length that fits in the rest of the text.
A text costs time proportional to its length (its square at worst, if held values share their first characters and
differ in length), never to the number of values held.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from eventbus.core.envelope import REDACTED

#: Shorter texts are not redacted: replacing "yes" or "42" everywhere would mangle logs and protect nothing.
MIN_TEXT_LENGTH: Final = 4

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


class ExactSpelling(str):
    """A sensitive value found as spelled only (case-sensitive, unescaped): a payload key shaped like a field name."""

    __slots__ = ()


def redact(text: str, values: Iterable[str]) -> str:
    """``text`` with each of ``values`` (in any case and spelling, see the module) replaced by ``***``."""
    return SecretIndex(values).redact(text)


def _fold(text: str) -> str:
    """Case-folded so that ``_fold(t.lower()) == _fold(t.upper()) == _fold(t)`` for every character."""
    return text.lower() if text.isascii() else text.upper().casefold()


@dataclass(frozen=True, slots=True)
class ValueGroup:
    """The values of one message as the index holds them: case-folded, and exact (field-like keys)."""

    folded: frozenset[str]
    exact: frozenset[str]

    @classmethod
    def of(cls, values: Iterable[str]) -> ValueGroup:
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
        self.add(ValueGroup.of(values))

    def __bool__(self) -> bool:
        return bool(self._folded or self._exact)

    def __len__(self) -> int:
        return len(self._folded) + len(self._exact)

    def add(self, group: ValueGroup) -> None:
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

    def discard(self, group: ValueGroup) -> None:
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
