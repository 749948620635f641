"""Naming rules: event names from payload classes and handler functions, queue names."""

from __future__ import annotations

import re
from typing import Final

_PAYLOAD_SUFFIX = "Payload"
_SNAKE_PART = re.compile(r"_+([a-zA-Z0-9])")


def lower_first(name: str) -> str:
    """``ActionHappened`` -> ``actionHappened``."""
    return name[:1].lower() + name[1:]


def event_name_from_class_name(class_name: str) -> str:
    """``ActionHappenedPayload`` -> ``actionHappened`` (suffix dropped, first letter lowered)."""
    base = class_name.removesuffix(_PAYLOAD_SUFFIX) or class_name
    return lower_first(base)


def event_name_from_function_name(function_name: str) -> str:
    """``do_good`` -> ``doGood``; names without underscores keep their case after the first letter."""
    stripped = function_name.strip("_") or function_name
    camel = _SNAKE_PART.sub(lambda m: m.group(1).upper(), stripped)
    return lower_first(camel)


#: How SNS and SQS name FIFO topics and queues.
FIFO_SUFFIX: Final = ".fifo"


def default_queue_name(environment: str, service: str) -> str:
    """The per-service queue: ``{environment}__{service}__queue``."""
    return f"{environment}__{service}__queue"
