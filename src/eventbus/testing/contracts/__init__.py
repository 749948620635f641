"""Contract suites, one per port: subclass one to prove an adapter keeps the port's contract.

Each suite is a plain class run by plain pytest (no plugin needed). Name the subclass ``Test...`` and implement its
hook (``make_publisher()``, ``make_repository()``, ``make_store()``, ``make_consumer()``), plus the one or two the
suite's module docstring names when it cannot read the adapter back through the port::

    from eventbus.testing.contracts import DeduplicationStoreContract

    class TestSqliteDeduplicationStore(DeduplicationStoreContract):
        def make_store(self):
            return SqliteDeduplicationStore(self.path)

        def stored(self, key):
            ...

Collection: the base classes set ``__test__ = False``, so importing one into a test module runs nothing. pytest
collects any class whose ``__test__`` is true, whatever its name, so each subclass gets ``__test__`` from its name:
true when it starts with ``Test``, false otherwise (unless the class body sets ``__test__`` itself). An intermediate
subclass holding shared set-up (``SqlContract``) therefore runs nothing, and ``TestSqlite(SqlContract)`` runs the
suite. Every adapter of this library, the in-memory ones included, runs these suites in its own test suite.
"""

from eventbus.testing.contracts.consumer import ConsumerContract, ConsumerHarness
from eventbus.testing.contracts.dedup import DeduplicationStoreContract
from eventbus.testing.contracts.outbox import OutboxStoreContract
from eventbus.testing.contracts.payload_store import PayloadStoreContract
from eventbus.testing.contracts.publisher import PublisherContract
from eventbus.testing.contracts.repository import EntityRepositoryContract

__all__ = [
    "ConsumerContract",
    "ConsumerHarness",
    "DeduplicationStoreContract",
    "EntityRepositoryContract",
    "OutboxStoreContract",
    "PayloadStoreContract",
    "PublisherContract",
]
