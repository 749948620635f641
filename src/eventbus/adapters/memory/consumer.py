"""The in-memory queue (SQS-like redelivery and redrive) and the synchronous consumer that drains it.

Meant for tests and for services that want to run without a broker; the consumer passes the same contract suite as
``SQSConsumer`` in a Celery worker.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from eventbus.core.dispatch import Fate, decide
from eventbus.core.envelope import MAX_MESSAGE_BYTES, Metadata
from eventbus.core.registry import SubscriptionRegistry
from eventbus.core.tracing import handling

logger = logging.getLogger("eventbus.consumer")

#: A handler as the in-memory consumer calls it: the payload (dict, or the declared class) and metadata.
Handler = Callable[[object, Metadata], object]


@dataclass
class _Stored:
    message_id: str
    body: str
    receive_count: int = 0


@dataclass
class InMemoryQueue:
    """A FIFO of raw bodies with SQS's redrive rule: past ``max_receive_count`` receives, to ``dead_letters``."""

    name: str = "memory"
    max_receive_count: int = 5
    messages: list[_Stored] = field(default_factory=list)
    dead_letters: list[str] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def send(self, body: str) -> str:
        """Enqueue a raw body; return its message id."""
        message_id = f"{self.name}-{next(self._ids)}"
        self.messages.append(_Stored(message_id, body))
        return message_id

    def __len__(self) -> int:
        return len(self.messages)


class InMemoryConsumer:
    """Consumes an :class:`InMemoryQueue` synchronously with the same fates as ``SQSConsumer``.

    ``handlers`` maps a subscription's handler key to the callable that runs it.
    """

    def __init__(
        self,
        queue: InMemoryQueue,
        registry: SubscriptionRegistry,
        handlers: Mapping[str, Handler],
        *,
        max_bytes: int = MAX_MESSAGE_BYTES,
        unsubscribed: Fate = Fate.DROP,
    ) -> None:
        self.queue = queue
        self.registry = registry
        self.handlers = handlers
        self.max_bytes = max_bytes
        self.unsubscribed = unsubscribed

    def drain(self, max_rounds: int = 100) -> int:
        """Receive until the queue is empty (or ``max_rounds`` passes); return how many handlers succeeded."""
        succeeded = 0
        for _ in range(max_rounds):
            if not self.queue.messages:
                break
            pending, self.queue.messages = self.queue.messages, []
            for stored in pending:
                succeeded += self._receive(stored)
        return succeeded

    def _receive(self, stored: _Stored) -> int:
        stored.receive_count += 1
        if stored.receive_count > self.queue.max_receive_count:
            self.queue.dead_letters.append(stored.body)
            return 0
        decision = decide(stored.body, self.registry, max_bytes=self.max_bytes, unsubscribed=self.unsubscribed)
        if decision.fate is not Fate.DISPATCH:
            level = logging.INFO if decision.fate is Fate.DROP else logging.WARNING
            logger.log(
                level,
                "eventbus: %s message %s from queue %s: %s",
                decision.fate.value,
                stored.message_id,
                self.queue.name,
                decision.reason,
            )
            if decision.fate is Fate.DEAD_LETTER:
                self.queue.dead_letters.append(stored.body)
            return 0
        assert decision.envelope is not None
        assert decision.subscription is not None
        envelope, subscription = decision.envelope, decision.subscription
        payload = subscription.validate_payload(envelope) or envelope.payload
        try:
            with handling(envelope.metadata):
                self.handlers[subscription.handler](payload, envelope.metadata)
        except Exception:
            logger.exception(
                "eventbus: handler %s failed for message %s from queue %s; left for redelivery",
                subscription.handler,
                stored.message_id,
                self.queue.name,
            )
            self.queue.messages.append(stored)
            return 0
        return 1
