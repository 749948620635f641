"""FIFO: which message group an event belongs to, and its deduplication id (pure).

SNS/SQS FIFO deliver the messages of one message group in the order they were published, and a worker handles them
one at a time (:mod:`eventbus.celery.fifo`); different groups go in parallel. An event's group is, in this order:
the group its payload class chose (``metadata.messageGroupId``: :meth:`EventPayload.message_group_id`), its
``entityId`` (every event of one entity in order: the usual need), else its event name. SQS takes at most 128
characters from ``A-Za-z0-9`` and ASCII punctuation in a group or deduplication id: any other value is replaced by its
SHA-256 (the same value always maps to the same group).

The deduplication id is the event's ``metadata.eventId`` when it has one, else the SHA-256 of the message: a message
published twice within SQS's five-minute window (an outbox relay retrying after a timeout) is delivered once, while
two events are never taken for one (their ``publishDate`` and ``traceparent`` differ).
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

from eventbus.core.envelope import Envelope

#: The metadata key of a group a payload class chose.
GROUP_KEY: Final = "messageGroupId"
#: What SQS accepts in a MessageGroupId / MessageDeduplicationId.
_VALID: Final = re.compile(r"[A-Za-z0-9!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]{1,128}")


def valid_id(value: str) -> str:
    """``value`` if SQS takes it as a group or deduplication id, else its SHA-256 in hex."""
    return value if _VALID.fullmatch(value) else hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def message_group_of(envelope: Envelope) -> str:
    """The event's message group: the payload class's choice, else ``entityId``, else the event name."""
    chosen = (envelope.metadata.model_extra or {}).get(GROUP_KEY)
    group = chosen if isinstance(chosen, str) and chosen else envelope.metadata.entity_id or envelope.event_name
    return valid_id(group)


def deduplication_id_of(envelope: Envelope, message: str) -> str:
    """The event's ``metadata.eventId``, else the SHA-256 of ``message`` (what is published)."""
    explicit = (envelope.metadata.model_extra or {}).get("eventId")
    if isinstance(explicit, str) and explicit:
        return valid_id(explicit)
    return hashlib.sha256(message.encode("utf-8", "surrogatepass")).hexdigest()
