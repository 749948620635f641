"""The SQLAlchemy 2.x DeduplicationStore: rows of ``eventbus_dedup`` (:data:`tables.dedup`), any dialect.

Each call runs in its own short transaction, independent of any repository unit of work, so a claim is visible to
other workers at once and survives a rollback of the handler's work. Every write is a single conditional statement,
or an INSERT in a savepoint, so concurrent claims settle in the database: at most one UPDATE or INSERT wins, the
others read its row. Times come from the local clock (epoch seconds), so the hosts sharing a database need clocks
synchronised to well within the lease.
"""

from __future__ import annotations

import time
from typing import Any, cast

from sqlalchemy import CursorResult, and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from eventbus.adapters.sqlalchemy.tables import dedup
from eventbus.errors import DeduplicationError
from eventbus.ports import Claim, DeduplicationStore

#: A claim looks again when a concurrent claim, expiry or purge changed the row between its statements.
_CLAIM_ATTEMPTS = 5


def _rowcount(result: Any) -> int:
    """Rows matched by an UPDATE or DELETE (``Session.execute`` is typed as returning a plain ``Result``)."""
    return cast("CursorResult[Any]", result).rowcount


class SqlAlchemyDeduplicationStore(DeduplicationStore):
    """Deduplication records in ``eventbus_dedup``, through sessions of ``session_factory``."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory

    @staticmethod
    def _insert(session: Session, key: str, owner: str, state: Claim, expires_at: float) -> bool:
        """Insert the row; False if it exists already. The savepoint keeps the transaction usable after a conflict."""
        try:
            with session.begin_nested():
                session.execute(insert(dedup).values(key=key, owner=owner, state=state.value, expires_at=expires_at))
        except IntegrityError:
            return False
        return True

    def claim(self, key: str, owner: str, lease: float) -> Claim:
        """See :meth:`DeduplicationStore.claim`."""
        for _ in range(_CLAIM_ATTEMPTS):
            try:
                with self.session_factory() as session, session.begin():
                    answer = self._claim_once(session, key, owner, lease)
            except SQLAlchemyError as exc:
                raise DeduplicationError(f"claim of {key!r} failed: {type(exc).__name__}") from exc
            if answer is not None:
                return answer
        raise DeduplicationError(f"claim of {key!r} failed: the record kept changing under {_CLAIM_ATTEMPTS} attempts")

    def _claim_once(self, session: Session, key: str, owner: str, lease: float) -> Claim | None:
        """One attempt: the claim's answer, or None if the row changed between statements and the caller must retry."""
        now = time.time()
        taken = session.execute(
            update(dedup)
            .where(
                dedup.c.key == key,
                or_(
                    dedup.c.expires_at < now,
                    and_(dedup.c.state == Claim.IN_PROGRESS.value, dedup.c.owner == owner),
                ),
            )
            .values(owner=owner, state=Claim.IN_PROGRESS.value, expires_at=now + lease)
        )
        if _rowcount(taken):
            return Claim.ACQUIRED
        row = session.execute(
            select(dedup.c.state, dedup.c.owner).where(dedup.c.key == key, dedup.c.expires_at >= now)
        ).first()
        if row is None:
            # no live row: create it, unless another delivery does first (then look again)
            return Claim.ACQUIRED if self._insert(session, key, owner, Claim.IN_PROGRESS, now + lease) else None
        if row.state == Claim.DONE.value:
            return Claim.DONE
        # ours after all (the same owner claimed concurrently): the UPDATE renews it on the next attempt
        return Claim.IN_PROGRESS if row.owner != owner else None

    def complete(self, key: str, owner: str, keep_for: float) -> None:
        """See :meth:`DeduplicationStore.complete`."""
        expires_at = time.time() + keep_for
        values = {"owner": owner, "state": Claim.DONE.value, "expires_at": expires_at}
        overwrite = update(dedup).where(dedup.c.key == key).values(**values)
        try:
            with self.session_factory() as session, session.begin():
                # the row may be gone (released, expired and purged): recreate it; if someone beat us to it, overwrite
                if not _rowcount(session.execute(overwrite)) and not self._insert(
                    session, key, owner, Claim.DONE, expires_at
                ):
                    session.execute(overwrite)
        except SQLAlchemyError as exc:
            raise DeduplicationError(f"complete of {key!r} failed: {type(exc).__name__}") from exc

    def release(self, key: str, owner: str) -> None:
        """See :meth:`DeduplicationStore.release`."""
        try:
            with self.session_factory() as session, session.begin():
                session.execute(
                    delete(dedup).where(
                        dedup.c.key == key, dedup.c.owner == owner, dedup.c.state == Claim.IN_PROGRESS.value
                    )
                )
        except SQLAlchemyError as exc:
            raise DeduplicationError(f"release of {key!r} failed: {type(exc).__name__}") from exc

    def purge_expired(self) -> int:
        """See :meth:`DeduplicationStore.purge_expired`."""
        try:
            with self.session_factory() as session, session.begin():
                return _rowcount(session.execute(delete(dedup).where(dedup.c.expires_at < time.time())))
        except SQLAlchemyError as exc:
            raise DeduplicationError(f"purge_expired failed: {type(exc).__name__}") from exc
