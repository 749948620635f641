"""The SQLAlchemy OutboxStore: rows in ``eventbus_outbox``, written in the repository's open unit of work."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from eventbus.adapters.sqlalchemy.repository import SqlAlchemyEntityRepository
from eventbus.adapters.sqlalchemy.tables import outbox
from eventbus.core.envelope import Envelope
from eventbus.errors import OutboxError
from eventbus.ports import ClaimedBatch, OutboxStore


class SqlAlchemyOutboxStore(OutboxStore):
    """Outbox rows in the Core table :data:`~eventbus.adapters.sqlalchemy.tables.outbox`.

    ``add`` inside ``repository.atomic()`` runs on that unit of work's session, so the rows commit or roll back with
    the entity changes; otherwise (or without a repository) it commits them at once in a session of its own.
    ``claim`` and the bookkeeping always use short transactions of their own.
    """

    orm = "sqlalchemy"

    def __init__(
        self, session_factory: sessionmaker[Session], repository: SqlAlchemyEntityRepository | None = None
    ) -> None:
        self.session_factory = session_factory
        self.repository = repository

    def _open_session(self) -> Session | None:
        return None if self.repository is None else self.repository.current_session()

    def add(self, envelopes: Sequence[Envelope]) -> list[str]:
        """Insert one row per envelope, in the repository's open unit of work if there is one."""
        now = time.time()
        rows: list[dict[str, Any]] = [
            {
                "message_id": str(uuid.uuid4()),
                "event_name": envelope.event_name,
                "body": envelope.to_json(),
                "created_at": now,
                "attempts": 0,
                "claim_token": None,
                "claimed_until": 0.0,
            }
            for envelope in envelopes
        ]
        if not rows:
            return []
        try:
            session = self._open_session()
            if session is not None:
                session.execute(insert(outbox), rows)
            else:
                with self.session_factory() as own, own.begin():
                    own.execute(insert(outbox), rows)
        except SQLAlchemyError as exc:
            raise OutboxError(f"outbox add failed: {type(exc).__name__}") from exc
        return [row["message_id"] for row in rows]

    def on_commit(self, callback: Callable[[], None]) -> None:
        """The repository's ``on_commit``; at once without a repository."""
        if self.repository is None:
            callback()
        else:
            self.repository.on_commit(callback)

    def claim(self, limit: int, lease: float, ids: Sequence[str] | None = None) -> ClaimedBatch:
        """Claim by update: mark the oldest claimable rows with a new token and return them, oldest first.

        Concurrent claimers take disjoint batches, and a claim comes back empty only when no row was claimable.

        Raises:
            OutboxError: the store failed, or the repository has a unit of work open (claims are made after commit).
        """
        if self._open_session() is not None:
            raise OutboxError("outbox claim inside an open unit of work: claim after the commit")
        token, now = str(uuid.uuid4()), time.time()
        if limit <= 0 or (ids is not None and not ids):
            return ClaimedBatch(token=token)
        candidates = select(outbox.c.id).where(outbox.c.claimed_until < now).order_by(outbox.c.id).limit(limit)
        if ids is not None:
            candidates = candidates.where(outbox.c.message_id.in_(list(ids)))
        claimed = update(outbox).values(claim_token=token, claimed_until=now + lease)
        columns = (outbox.c.message_id, outbox.c.body, outbox.c.event_name, outbox.c.attempts)
        try:
            with self.session_factory() as session:
                if session.get_bind().dialect.name == "postgresql":
                    # One statement: rows another claimer holds locked are skipped rather than waited for (and then
                    # found taken), so concurrent claimers take the next rows instead of coming back empty.
                    locked = candidates.with_for_update(skip_locked=True).scalar_subquery()
                    with session.begin():
                        returned = session.execute(
                            claimed.where(outbox.c.id.in_(locked)).returning(outbox.c.id, *columns)
                        ).all()
                    ordered = sorted(returned, key=lambda row: row[0])  # RETURNING has no order
                    return ClaimedBatch.from_rows(token, [row[1:] for row in ordered])
                # Elsewhere (SQLite) candidates are read in a transaction of their own: on SQLite a transaction that
                # has read cannot wait for the write lock, one that starts by writing can. The UPDATE repeats the
                # condition, so rows another claimer took meanwhile are skipped; when it took them all, read the
                # candidates again (each retry means another claimer got rows, so this ends).
                while True:
                    with session.begin():
                        candidate_ids = list(session.scalars(candidates))
                    if not candidate_ids:
                        return ClaimedBatch(token=token)
                    with session.begin():
                        session.execute(claimed.where(outbox.c.id.in_(candidate_ids), outbox.c.claimed_until < now))
                        rows = session.execute(
                            select(*columns).where(outbox.c.claim_token == token).order_by(outbox.c.id)
                        ).all()
                    if rows:
                        return ClaimedBatch.from_rows(token, rows)
        except SQLAlchemyError as exc:
            raise OutboxError(f"outbox claim failed: {type(exc).__name__}") from exc

    def mark_sent(self, token: str, ids: Sequence[str]) -> None:
        """Delete rows ``ids`` still claimed under ``token``."""
        if not ids:
            return
        statement = delete(outbox).where(outbox.c.claim_token == token, outbox.c.message_id.in_(list(ids)))
        self._write("mark_sent", statement)

    def mark_failed(self, token: str, ids: Sequence[str], retry_in: float) -> None:
        """Release rows ``ids`` claimed under ``token``: one more attempt, claimable again after ``retry_in``."""
        if not ids:
            return
        statement = (
            update(outbox)
            .where(outbox.c.claim_token == token, outbox.c.message_id.in_(list(ids)))
            .values(attempts=outbox.c.attempts + 1, claim_token=None, claimed_until=time.time() + retry_in)
        )
        self._write("mark_failed", statement)

    def _write(self, operation: str, statement: Any) -> None:
        try:
            with self.session_factory() as session, session.begin():
                session.execute(statement)
        except SQLAlchemyError as exc:
            raise OutboxError(f"outbox {operation} failed: {type(exc).__name__}") from exc

    def pending(self) -> int:
        """How many rows are stored (claimed or not)."""
        try:
            with self.session_factory() as session:
                return int(session.scalar(select(func.count()).select_from(outbox)) or 0)
        except SQLAlchemyError as exc:
            raise OutboxError(f"outbox pending failed: {type(exc).__name__}") from exc
