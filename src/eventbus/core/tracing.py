"""W3C trace context: carried from the event being handled to the events it causes."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Final

from eventbus.core.envelope import Metadata

_VERSION_00: Final = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
#: The longest ``tracestate`` eventbus carries as it is (W3C: vendors may drop a longer one).
TRACESTATE_LIMIT: Final = 512


def traceparent_parts(traceparent: str) -> tuple[str, str, str] | None:
    """``(trace id, parent id, flags)`` of a W3C version-00 ``traceparent`` (lower-case hex, nothing before or after
    it); None for anything else."""
    match = _VERSION_00.fullmatch(traceparent)
    return None if match is None else (match.group(1), match.group(2), match.group(3))


#: Metadata of the event whose handler is running in this context, if any.
current_event: ContextVar[Metadata | None] = ContextVar("eventbus_current_event", default=None)
#: ``(traceparent, tracestate)`` a task run continues (restored from its task message), if any.
_continued: ContextVar[tuple[str, str] | None] = ContextVar("eventbus_continued_trace", default=None)


def new_traceparent(trace_id: str | None = None, flags: str = "01") -> str:
    """A traceparent with a fresh span id, continuing ``trace_id`` when given."""
    return f"00-{trace_id or secrets.token_hex(16)}-{secrets.token_hex(8)}-{flags}"


def child_traceparent(parent: str) -> str:
    """Continue the parent's trace with a new span id; start a new trace if ``parent`` is not valid."""
    parts = traceparent_parts(parent)
    if parts is None:
        return new_traceparent()
    return new_traceparent(parts[0], parts[2])


@contextmanager
def handling(metadata: Metadata) -> Iterator[None]:
    """Mark ``metadata`` as the event being handled, for the duration of the block."""
    token = current_event.set(metadata)
    try:
        yield
    finally:
        current_event.reset(token)


def current_trace() -> tuple[str, str] | None:
    """``(traceparent, tracestate)`` this context continues: the handled event's, else a task run's, else ``None``."""
    event = current_event.get()
    if event is not None:
        return event.traceparent, event.tracestate
    return _continued.get()


@contextmanager
def continuing(traceparent: str, tracestate: str = "") -> Iterator[None]:
    """Continue ``traceparent``'s trace for the block (a task run whose message carried it); no-op when empty."""
    if not traceparent:
        yield
        return
    token = _continued.set((traceparent, tracestate))
    try:
        yield
    finally:
        _continued.reset(token)
