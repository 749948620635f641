"""The SQLAlchemy 2.x adapter: entity repository, deduplication store and transactional outbox.

The deduplication store and the outbox keep their rows in ``eventbus_dedup`` and ``eventbus_outbox``
(:data:`eventbus.adapters.sqlalchemy.tables.metadata`): create them with ``metadata.create_all(engine)`` or
include the tables in your Alembic migrations.
"""

try:
    import sqlalchemy as _sqlalchemy  # noqa: F401  (fail here, naming the extra, rather than deep inside a module)
except ImportError as exc:
    raise ImportError(
        "eventbus's SQLAlchemy adapter needs the sqlalchemy package: pip install 'eventbus[sqlalchemy]'"
    ) from exc

from eventbus.adapters.sqlalchemy.repository import SqlAlchemyEntityRepository

__all__ = ["SqlAlchemyEntityRepository"]
