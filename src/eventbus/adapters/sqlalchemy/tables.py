"""eventbus's tables for SQLAlchemy; the same shape as the Django models. Times are epoch seconds (floats)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Integer, MetaData, String, Table, Text

#: Create with ``metadata.create_all(engine)``, or add to your migrations.
metadata = MetaData()

dedup = Table(
    "eventbus_dedup",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("owner", String(255), nullable=False),
    Column("state", String(16), nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
)

outbox = Table(
    "eventbus_outbox",
    metadata,
    # BigInteger on PostgreSQL, INTEGER (rowid) on SQLite so it autoincrements there too
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("message_id", String(36), nullable=False, unique=True),
    Column("event_name", String(255), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("claim_token", String(36), nullable=True),
    Column("claimed_until", Float, nullable=False, default=0.0, index=True),
)
