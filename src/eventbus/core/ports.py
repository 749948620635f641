"""Ports: what the core needs from a transport, a worker runtime and an entity store.

Each port has an abstract contract suite in ``tests/contract/``; every adapter, the
in-memory ones included, must pass it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from eventbus.core.envelope import Envelope


class Publisher(ABC):
    """Sends envelopes to a topic."""

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
