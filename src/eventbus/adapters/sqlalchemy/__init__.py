"""The SQLAlchemy 2.x adapter: entity repository, deduplication store and transactional outbox.

The deduplication store and the outbox keep their rows in ``eventbus_dedup`` and ``eventbus_outbox``
(:data:`eventbus.adapters.sqlalchemy.tables.metadata`): create them with ``metadata.create_all(engine)`` or
include the tables in your Alembic migrations.
"""

from eventbus.adapters.sqlalchemy.repository import SqlAlchemyEntityRepository

__all__ = ["SqlAlchemyEntityRepository"]
