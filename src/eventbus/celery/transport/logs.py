"""The transport's logger, and how its log lines word a failure."""

from __future__ import annotations

import logging
from typing import Final

from eventbus.errors import TransportError

logger = logging.getLogger("eventbus.transport")

#: How often a failure that goes on (an outage, failing deletes) is logged again, in seconds.
REPEAT_LOG_EVERY: Final = 30.0
_REASON_LIMIT: Final = 300


def reason(exc: object) -> str:
    """A failure as a log line names it: its type and text (for a :class:`TransportError`, the vendor's), bounded."""
    if isinstance(exc, TransportError) and exc.__cause__ is not None:
        exc = exc.__cause__
    text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    return text[:_REASON_LIMIT]


#: SQS's longest visibility timeout, seconds (12 hours).
MAX_VISIBILITY = 43_200
