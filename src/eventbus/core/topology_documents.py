"""The policy documents an adapter builds when it applies a topology change: the queue policy merged with what is
deployed, and the redrive policy. Pure, like :mod:`eventbus.core.topology`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from eventbus.core.topology import SID_PREFIX, queue_policy

__all__ = ["merge_queue_policy", "redrive_policy", "statements_of"]


def merge_queue_policy(
    current: Mapping[str, Any] | None, queue_arn: str, topic_arns: Iterable[str], revoke: Iterable[str] = ()
) -> dict[str, Any]:
    """``current`` with :func:`queue_policy`'s statements in it: each of ours replaces the statement with its ``Sid``
    (in place) or is appended; every other statement is kept, except eventbus's for the ``revoke`` topic names."""
    ours = {statement["Sid"]: statement for statement in queue_policy(queue_arn, topic_arns)["Statement"]}
    dropped = {f"{SID_PREFIX}{name}" for name in revoke} - ours.keys()
    merged: list[Any] = []
    seen: set[Any] = set()
    for statement in statements_of(current):
        sid = statement.get("Sid") if isinstance(statement, Mapping) else None
        if sid in ours:
            if sid not in seen:
                merged.append(ours[sid])
            seen.add(sid)
        elif sid not in dropped:
            merged.append(statement)
    merged.extend(statement for sid, statement in ours.items() if sid not in seen)
    document = {key: value for key, value in (current or {}).items() if key != "Statement"}
    document.setdefault("Version", "2012-10-17")
    return {**document, "Statement": merged}


def redrive_policy(dead_letter_arn: str, max_receive_count: int) -> dict[str, Any]:
    """The SQS ``RedrivePolicy`` moving a message to the dead-letter queue after ``max_receive_count`` receives."""
    return {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": max_receive_count}


def statements_of(policy: Mapping[str, Any] | None) -> list[Any]:
    """The statements of a policy document (one given alone, not in a list, counts as a list of one)."""
    found = (policy or {}).get("Statement", [])
    return list(found) if isinstance(found, list) else [found]
