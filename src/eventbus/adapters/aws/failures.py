"""How the AWS adapter reads and names a vendor failure: one reason format, one set of "no such queue" codes."""

from __future__ import annotations

from typing import Final

from botocore.exceptions import ClientError

__all__ = ["NO_QUEUE", "REASON_LIMIT", "error_code", "vendor_reason"]

#: The longest vendor text an adapter error carries (a botocore message can quote a whole request).
REASON_LIMIT: Final = 300
#: What SQS answers for a queue that does not exist (the JSON protocol's code, then the query protocol's).
NO_QUEUE: Final = frozenset({"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"})


def vendor_reason(exc: BaseException) -> str:
    """``<exception type>: <text>``, cut to :data:`REASON_LIMIT`."""
    return f"{type(exc).__name__}: {exc}"[:REASON_LIMIT]


def error_code(exc: ClientError) -> str:
    """The AWS error code of a failed call (``""`` when the response names none)."""
    return str(exc.response.get("Error", {}).get("Code") or "")
