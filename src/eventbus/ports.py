"""Ports: every seam between the core and the technologies it runs on, one abstract class each.

Each method's contract is in its docstring (what it must do, what it raises). Each port has a contract suite in
:mod:`eventbus.testing.contracts` that an adapter, in this library or outside it, subclasses with one hook to prove it
keeps the contract. Capabilities that change how a caller uses an adapter are declared here as class attributes
(``Publisher.transactional``, ``EntityRepository.orm`` / ``OutboxStore.orm``), never discovered by probing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Final

from eventbus.core.claim_check import Pointer
from eventbus.core.envelope import Envelope
from eventbus.core.topology import Change, Deployed, Topology

__all__ = [
    "MAX_ID_LENGTH",
    "Claim",
    "ClaimedBatch",
    "DeduplicationStore",
    "DeliverySettlement",
    "EntityRepository",
    "OutboxItem",
    "OutboxStore",
    "PayloadStore",
    "Publisher",
    "TopologyStore",
]

#: The longest deduplication key or owner a store must accept (the SQL stores' columns).
MAX_ID_LENGTH: Final = 255


class Publisher(ABC):
    """Sends envelopes to a topic."""

    #: True when ``publish`` only records the events in the caller's open transaction (the outbox): they leave after
    #: it commits and never if it rolls back. A callback task then publishes its success event inside the
    #: transaction instead of after the commit.
    transactional: ClassVar[bool] = False

    @abstractmethod
    def publish(self, envelope: Envelope) -> str:
        """Publish one event and return the transport's message id.

        Raises:
            PublishError: the transport refused or failed; never swallowed.
        """

    @abstractmethod
    def publish_batch(self, envelopes: Sequence[Envelope]) -> list[str]:
        """Publish several events; return their message ids in the same order.

        Raises:
            PublishError: some or all failed; ``failed_ids`` names the positions (as text)
                that failed. Events not named there were published.
        """


class EntityRepository(ABC):
    """Loads and deletes entities inside the caller's transaction.

    ``atomic()`` opens (or joins) a transaction; ``on_commit(fn)`` runs ``fn`` after the
    outermost one commits, and never if it rolls back: that is how success events stay
    silent about work that was undone.
    """

    #: The transactions it joins (``"django"``, ``"sqlalchemy"``, ``"memory"``; ``""`` unknown): an outbox store
    #: must join the same ones, or events would commit apart from the work they report (checked at start-up).
    orm: ClassVar[str] = ""

    @abstractmethod
    def atomic(self) -> AbstractContextManager[None]:
        """A transaction: committed when the block exits normally, rolled back when it raises."""

    @abstractmethod
    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the current transaction commits (at once when none is open)."""

    @abstractmethod
    def identity(self, instance: Any) -> str:
        """The entity's id as text (``metadata.entityId``)."""

    @abstractmethod
    def get(self, model: Any, **lookup: Any) -> Any:
        """Return the one entity of ``model`` matching ``lookup``.

        Raises:
            EntityNotFound: nothing matches.
            RepositoryError: the store failed (driver error chained with ``from``).
        """

    @abstractmethod
    def delete(self, instance: Any) -> None:
        """Delete ``instance``.

        Raises:
            RepositoryError: the store failed.
        """


class DeduplicationStore(ABC):
    """Remembers which events were handled, and which are being handled by whom.

    Keys and owners are opaque strings of at most :data:`MAX_ID_LENGTH` (255) characters. An owner names one
    execution of a handler, never two. Times are seconds; an adapter may use its own clock (the database's or
    Redis's) or the local one, consistently. Every method may be called from any thread.
    """

    @abstractmethod
    def claim(self, key: str, owner: str, lease: float) -> Claim:
        """Try to become the one execution that handles ``key``, or renew ``owner``'s claim; atomic across processes.

        * no record, or an expired one: record ``owner`` as holder until now + ``lease``; ``ACQUIRED``;
        * held (not expired) by the same ``owner``: renew, holder until now + ``lease``; ``ACQUIRED`` (the holder
          renewing its own claim: owners are unique per execution, so this never lets a second execution in);
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


class Claim(StrEnum):
    """The answer of :meth:`DeduplicationStore.claim`."""

    ACQUIRED = "acquired"
    IN_PROGRESS = "in-progress"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One stored event: its outbox id, the envelope's JSON as published, and how often sending it failed."""

    id: str
    body: str
    event_name: str
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class ClaimedBatch:
    """Rows claimed for sending under ``token``."""

    token: str
    items: list[OutboxItem] = field(default_factory=list)

    @classmethod
    def from_rows(cls, token: str, rows: Iterable[Sequence[Any]]) -> ClaimedBatch:
        """A batch from ``(id, body, event_name, attempts)`` rows, as a store reads them back."""
        return cls(token, [OutboxItem(id=i, body=body, event_name=name, attempts=n) for i, body, name, n in rows])


class OutboxStore(ABC):
    """Stores envelopes in the caller's transaction and hands them to relays, each row to one relay at a time."""

    #: The transactions it joins; must match the entity repository's :attr:`EntityRepository.orm`.
    orm: ClassVar[str] = ""

    @abstractmethod
    def add(self, envelopes: Sequence[Envelope]) -> list[str]:
        """Store ``envelopes`` (their JSON, ``Envelope.to_json()``) and return their outbox ids, in order.

        Inside an open transaction of the adapter's unit of work the rows are part of it: they exist only if it
        commits. Outside one they are committed at once.

        Raises:
            OutboxError: the store failed.
        """

    @abstractmethod
    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` after the open transaction commits (never if it rolls back); at once outside one."""

    @abstractmethod
    def claim(self, limit: int, lease: float, ids: Sequence[str] | None = None) -> ClaimedBatch:
        """Claim up to ``limit`` rows nobody holds (never claimed, or their claim expired), oldest first.

        With ``ids``, only those rows (any already claimed or gone are skipped). Claimed rows are not handed to
        another ``claim`` until ``lease`` seconds have passed. Commits by itself, outside any caller transaction.

        Raises:
            OutboxError: the store failed.
        """

    @abstractmethod
    def mark_sent(self, token: str, ids: Sequence[str]) -> None:
        """Delete rows ``ids`` still claimed under ``token``.

        Raises:
            OutboxError: the store failed.
        """

    @abstractmethod
    def mark_failed(self, token: str, ids: Sequence[str], retry_in: float) -> None:
        """Release rows ``ids`` claimed under ``token``: count one more failed attempt, claimable again after
        ``retry_in`` seconds.

        Raises:
            OutboxError: the store failed.
        """

    @abstractmethod
    def pending(self) -> int:
        """How many rows wait to be sent (claimed or not).

        Raises:
            OutboxError: the store failed.
        """


class DeliverySettlement(ABC):
    """The acknowledgement seam: how a consumer settles the deliveries its transport handed it.

    Deliveries are named by the transport's delivery tag. Deletes (``ack``), releases and visibility extensions are
    the transport's to batch; the consumer states a message's fate here and never calls the queue around it.
    Every method is called on the consumer's event-loop thread.
    """

    #: True once the consumer is shutting down: calls go out synchronously, nothing new is received.
    draining: bool = False
    #: Set by the consumer: whether a worker process is running a delivery (closing keeps those held, they finish).
    in_progress: Callable[[str], bool] | None = None
    #: Set by the consumer: called with a delivery's tag when it is settled, and how: ``"deleted"``, ``"released"``
    #: (visible again now) or ``"left"`` (forgotten or rejected: visible after its visibility timeout). FIFO groups
    #: go on by it (:mod:`eventbus.celery.fifo`).
    on_settled: Callable[[str, str], None] | None = None

    def release_later(self, delivery_info: dict[str, Any], seconds: int) -> None:  # noqa: B027 (optional)
        """Make a delivery (held or not any more) visible again ``seconds`` from now, and stop holding it: FIFO hands
        a failed message back together with the ones waiting behind it, all visible at the same moment. A transport
        that cannot leaves them to their visibility timeouts (this default)."""

    @abstractmethod
    def forget(self, delivery_tag: str) -> None:
        """Stop holding the delivery without touching the queue: it reappears after its visibility timeout (and,
        past the queue's ``maxReceiveCount``, moves to its dead-letter queue). Frees the prefetch slot."""

    @abstractmethod
    def release(self, delivery_tag: str) -> bool:
        """Make the delivery visible again now (visibility 0) for another consumer, and stop holding it.

        Returns False when the delivery was not held (already settled).
        """

    @abstractmethod
    def release_held(self, keep: Callable[[str], bool] | None = None) -> int:
        """Release every held delivery except those ``keep`` says are running; return how many were released."""

    @abstractmethod
    def flush(self) -> None:
        """Send every buffered delete and visibility change now, synchronously."""


class PayloadStore(ABC):
    """Keeps the bodies of claim-checked events (:mod:`eventbus.core.claim_check`): events too large for a message.

    Calls may block (network); the consumer calls ``get`` on its event-loop thread for the rare large event, and
    ``delete`` from a background thread after the message was deleted.
    """

    #: Where ``put`` stores bodies (an S3 bucket's name); ``get`` and ``delete`` take any pointer's.
    bucket: str

    @abstractmethod
    def put(self, body: bytes) -> Pointer:
        """Store ``body`` under a new unique key; return its pointer.

        Raises:
            ClaimCheckError: not stored (``permanent`` False: the store is unreachable or failing).
        """

    @abstractmethod
    def get(self, pointer: Pointer, max_bytes: int) -> bytes:
        """The body stored at ``pointer``.

        Raises:
            ClaimCheckError: ``permanent`` with reason ``claim-check-missing`` (no such object or bucket),
                ``claim-check-denied`` (not allowed to read it) or ``oversized`` (over ``max_bytes``: not read);
                not ``permanent`` when the store is unreachable or failing.
        """

    @abstractmethod
    def delete(self, pointers: Sequence[Pointer]) -> None:
        """Delete these bodies; a missing one is no error.

        Raises:
            ClaimCheckError: some were not deleted (they stay until the bucket's lifecycle rule expires them).
        """


class TopologyStore(ABC):
    """Reads and changes the topics, queues, subscriptions and policies a :class:`~eventbus.core.topology.Topology`
    names. Credentials and region are the adapter's (boto3's chain for AWS); an emulator is just an endpoint."""

    @abstractmethod
    def read(self, topology: Topology) -> Deployed:
        """What is deployed of ``topology``: its topics, queue, dead-letter queue and every subscription of the queue.

        Raises:
            TransportError: the store could not be read.
        """

    @abstractmethod
    def apply(self, topology: Topology, changes: Sequence[Change]) -> None:
        """Make ``changes`` (from :func:`~eventbus.core.topology_plan.plan`), in order; each is idempotent.

        Raises:
            TransportError: a change failed (the ones before it are made).
        """
