"""The idempotent consumer: a handler runs once per event, however often the event is delivered.

SQS and SNS deliver at least once: a message is redelivered after a worker dies, after a delete is lost, and SNS
occasionally delivers one publish twice. A subscription that opts in (``@subscribe(idempotent=True)``) claims the
event's key in a :class:`DeduplicationStore` before its handler runs and marks it done afterwards:

* ``ACQUIRED``: nobody handled it yet (or the previous holder is gone): run the handler, then ``complete``.
* ``DONE``: it was handled: skip the handler, acknowledge the message.
* ``IN_PROGRESS``: another delivery is being handled right now: leave this one for redelivery (it will find
  ``DONE``, or take over if the holder died).

The *owner* of a claim is the SQS message id of the delivery holding it. SQS redelivers a message only after its
visibility lapsed, which the consumer's heartbeat prevents while the holder lives, so the same owner asking again
means the holder is gone: the claim is taken over at once instead of waiting for the lease to expire. The lease only
matters when the holder's own message is gone too.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from enum import StrEnum
from typing import Final, TypeVar

from eventbus.core.errors import EventBusError

logger = logging.getLogger("eventbus.idempotency")

T = TypeVar("T")

#: How long a claim holds when its holder never completes nor releases it (seconds).
DEFAULT_LEASE: Final = 900.0
#: How long a handled event's key is remembered (seconds): duplicates later than this run again.
DEFAULT_KEEP_FOR: Final = 86_400.0


class Claim(StrEnum):
    """The answer of :meth:`DeduplicationStore.claim`."""

    ACQUIRED = "acquired"
    IN_PROGRESS = "in-progress"
    DONE = "done"


class DeduplicationError(EventBusError):
    """The deduplication store failed; the driver's exception is chained as ``__cause__``."""


class DuplicateInProgress(EventBusError):
    """Another delivery of the same event is being handled; this one is left for redelivery."""


class DeduplicationStore(ABC):
    """Remembers which events were handled, and which are being handled by whom.

    Keys and owners are opaque strings of at most 255 characters. Times are seconds; an adapter may use its own
    clock (the database's or Redis's) or the local one, consistently.
    """

    @abstractmethod
    def claim(self, key: str, owner: str, lease: float) -> Claim:
        """Try to become the one delivery that handles ``key``; atomic across processes and hosts.

        * no record, or an expired one: record ``owner`` as holder until now + ``lease``; ``ACQUIRED``;
        * held (not expired) by the same ``owner``: renew the lease; ``ACQUIRED`` (the holder is gone: take over);
        * held (not expired) by another owner: ``IN_PROGRESS``, nothing changes;
        * completed and not expired: ``DONE``, nothing changes.

        Raises:
            DeduplicationError: the store failed.
        """

    @abstractmethod
    def complete(self, key: str, owner: str, keep_for: float) -> None:
        """Record ``key`` as handled, remembered until now + ``keep_for``, whoever holds it.

        Raises:
            DeduplicationError: the store failed.
        """

    @abstractmethod
    def release(self, key: str, owner: str) -> None:
        """Forget ``owner``'s claim on ``key`` (the handler failed and will be retried).

        Does nothing if ``key`` is held by another owner or completed.

        Raises:
            DeduplicationError: the store failed.
        """

    @abstractmethod
    def purge_expired(self) -> int:
        """Delete expired records; return how many (stores that expire records by themselves return 0).

        Raises:
            DeduplicationError: the store failed.
        """


def run_once(
    store: DeduplicationStore,
    key: str,
    owner: str,
    handler: Callable[[], T],
    *,
    lease: float = DEFAULT_LEASE,
    keep_for: float = DEFAULT_KEEP_FOR,
) -> tuple[Claim, T | None]:
    """Run ``handler`` unless ``key`` was handled already; return the claim and the handler's result.

    A handler that raises releases the claim (so a retry can run) and the exception propagates. A failure to record
    completion after the handler succeeded is logged, not raised: the work is done, and a redelivery would be taken
    over by the same owner at worst.

    Raises:
        DuplicateInProgress: another delivery holds the claim.
        DeduplicationError: the store failed before the handler ran (the handler did not run).
    """
    state = store.claim(key, owner, lease)
    if state is Claim.DONE:
        return state, None
    if state is Claim.IN_PROGRESS:
        raise DuplicateInProgress(f"event {key!r} is being handled by another delivery")
    try:
        result = handler()
    except BaseException:
        try:
            store.release(key, owner)
        except DeduplicationError as exc:
            logger.warning("eventbus: could not release the claim on %s (%s); it expires with its lease", key, exc)
        raise
    try:
        store.complete(key, owner, keep_for)
    except DeduplicationError as exc:
        logger.warning("eventbus: handled %s but could not record it (%s); a redelivery may run it again", key, exc)
    return state, result
