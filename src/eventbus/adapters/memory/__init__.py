"""The in-memory adapters: publisher, queue and synchronous consumer, entity repository, deduplication store, outbox,
payload store (claim-checks).

For tests and for services that run without a broker or a database; each passes the same contract suite
(:mod:`eventbus.testing.contracts`) as the real adapters. State lives in the process only. Import from this package
(``from eventbus.adapters.memory import InMemoryEntityRepository``), not from its modules.
"""

from eventbus.adapters.memory.consumer import Handler, InMemoryConsumer, InMemoryQueue
from eventbus.adapters.memory.dedup import InMemoryDeduplicationStore
from eventbus.adapters.memory.outbox import InMemoryOutboxStore
from eventbus.adapters.memory.payloads import InMemoryPayloadStore
from eventbus.adapters.memory.publisher import InMemoryPublisher
from eventbus.adapters.memory.repository import InMemoryEntityRepository

__all__ = [
    "Handler",
    "InMemoryConsumer",
    "InMemoryDeduplicationStore",
    "InMemoryEntityRepository",
    "InMemoryOutboxStore",
    "InMemoryPayloadStore",
    "InMemoryPublisher",
    "InMemoryQueue",
]
