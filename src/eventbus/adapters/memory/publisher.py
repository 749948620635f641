"""The in-memory Publisher: records every envelope, and optionally forwards its JSON to in-memory queues.

Meant for tests and for services that want to run without a broker; it passes the same contract suite as the SNS
publisher.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from eventbus.adapters.memory.consumer import InMemoryQueue
from eventbus.core.envelope import Envelope
from eventbus.errors import PublishError
from eventbus.ports import Publisher


class InMemoryPublisher(Publisher):
    """Records every published envelope in :attr:`published`, in order; optionally forwards JSON to queues."""

    def __init__(self, *, fail_with: str | None = None) -> None:
        self.published: list[Envelope] = []
        self.subscribers: list[InMemoryQueue] = []
        #: When set, every publish raises :class:`PublishError` with this text (to test failure paths).
        self.fail_with = fail_with
        self._ids = itertools.count(1)

    def publish(self, envelope: Envelope) -> str:
        """Record one envelope (and copy it to subscribed queues)."""
        if self.fail_with is not None:
            raise PublishError(self.fail_with)
        self.published.append(envelope)
        for queue in self.subscribers:
            queue.send(envelope.to_json())
        return f"memory-{next(self._ids)}"

    def publish_batch(self, envelopes: Sequence[Envelope]) -> list[str]:
        """Record several envelopes; all or nothing."""
        if self.fail_with is not None:
            raise PublishError(self.fail_with, failed_ids=tuple(str(i) for i in range(len(envelopes))))
        return [self.publish(envelope) for envelope in envelopes]
