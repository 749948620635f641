"""The Django ORM OutboxStore: rows in ``eventbus_outbox``, written in the caller's ``transaction.atomic``."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from django.db import DatabaseError, transaction
from django.db.models import F, QuerySet

from eventbus.adapters.django_orm.dedup import require_adapter_app
from eventbus.core.envelope import Envelope
from eventbus.errors import OutboxError
from eventbus.ports import ClaimedBatch, OutboxStore

if TYPE_CHECKING:
    # imported when a store is built (see require_adapter_app)
    from eventbus.adapters.django_orm.models import OutboxMessage


def _message_model() -> type[OutboxMessage]:
    require_adapter_app("outbox (EVENTBUS_OUTBOX=django)")
    from eventbus.adapters.django_orm.models import OutboxMessage

    return OutboxMessage


class DjangoOutboxStore(OutboxStore):
    """Outbox rows of the model :class:`OutboxMessage` on one database alias (``default`` unless given).

    ``add`` inside ``transaction.atomic(using=alias)`` is part of that transaction; outside one Django autocommits.
    ``claim`` and the bookkeeping run in their own short transactions, after the caller's has committed.
    """

    orm = "django"

    def __init__(self, using: str = "default") -> None:
        """Raises: ConfigurationError: the app ``eventbus.adapters.django_orm`` is not in ``INSTALLED_APPS``."""
        self._model = _message_model()
        self.using = using

    def add(self, envelopes: Sequence[Envelope]) -> list[str]:
        """Insert one row per envelope on the alias, in the open transaction if there is one."""
        now = time.time()
        rows = [
            self._model(
                message_id=str(uuid.uuid4()),
                event_name=envelope.event_name,
                body=envelope.to_json(),
                created_at=now,
                attempts=0,
                claim_token=None,
                claimed_until=0.0,
            )
            for envelope in envelopes
        ]
        if rows:
            try:
                self._model._default_manager.using(self.using).bulk_create(rows)
            except DatabaseError as exc:
                raise OutboxError(f"outbox add failed: {type(exc).__name__}") from exc
        return [row.message_id for row in rows]

    def on_commit(self, callback: Callable[[], None]) -> None:
        """``transaction.on_commit(callback, using=alias)``."""
        transaction.on_commit(callback, using=self.using)

    def claim(self, limit: int, lease: float, ids: Sequence[str] | None = None) -> ClaimedBatch:
        """Claim by update: mark the oldest claimable rows with a new token and return them, oldest first.

        Concurrent claimers take disjoint batches, and a claim comes back empty only when no row was claimable.

        Raises:
            OutboxError: the store failed, or a transaction is open on the alias (claims are made after commit).
        """
        connection = transaction.get_connection(self.using)
        if connection.in_atomic_block:
            raise OutboxError(f"outbox claim inside an open transaction on {self.using!r}: claim after the commit")
        token, now = str(uuid.uuid4()), time.time()
        if limit <= 0 or (ids is not None and not ids):
            return ClaimedBatch(token=token)
        manager = self._model._default_manager.using(self.using)
        candidates = manager.filter(claimed_until__lt=now)
        if ids is not None:
            candidates = candidates.filter(message_id__in=list(ids))
        candidates = candidates.order_by("id")
        try:
            if connection.vendor == "postgresql":
                # Rows another claimer holds locked are skipped rather than waited for (and then found taken), so
                # concurrent claimers take the next rows instead of coming back empty.
                with transaction.atomic(using=self.using):
                    locked = list(candidates.select_for_update(skip_locked=True).values_list("id", flat=True)[:limit])
                    return self._take(token, now + lease, manager.filter(id__in=locked))
            # Elsewhere (SQLite) candidates are read before the claiming transaction: on SQLite a transaction that has
            # read cannot wait for the write lock (it fails at once as "database is locked"), one that starts by
            # writing can. The UPDATE repeats the condition, so rows another claimer took meanwhile are skipped; when
            # it took them all, read the candidates again (each retry means another claimer got rows, so this ends).
            while True:
                candidate_ids = list(candidates.values_list("id", flat=True)[:limit])
                if not candidate_ids:
                    return ClaimedBatch(token=token)
                with transaction.atomic(using=self.using):
                    batch = self._take(token, now + lease, manager.filter(id__in=candidate_ids, claimed_until__lt=now))
                if batch.items:
                    return batch
        except DatabaseError as exc:
            raise OutboxError(f"outbox claim failed: {type(exc).__name__}") from exc

    def _take(self, token: str, until: float, rows: QuerySet[OutboxMessage]) -> ClaimedBatch:
        """Mark ``rows`` claimed under ``token`` until ``until``; read back that token's rows, oldest first."""
        rows.update(claim_token=token, claimed_until=until)
        claimed = self._model._default_manager.using(self.using).filter(claim_token=token).order_by("id")
        return ClaimedBatch.from_rows(token, claimed.values_list("message_id", "body", "event_name", "attempts"))

    def mark_sent(self, token: str, ids: Sequence[str]) -> None:
        """Delete rows ``ids`` still claimed under ``token``."""
        if not ids:
            return
        try:
            self._claimed(token, ids).delete()
        except DatabaseError as exc:
            raise OutboxError(f"outbox mark_sent failed: {type(exc).__name__}") from exc

    def mark_failed(self, token: str, ids: Sequence[str], retry_in: float) -> None:
        """Release rows ``ids`` claimed under ``token``: one more attempt, claimable again after ``retry_in``."""
        if not ids:
            return
        try:
            self._claimed(token, ids).update(
                attempts=F("attempts") + 1, claim_token=None, claimed_until=time.time() + retry_in
            )
        except DatabaseError as exc:
            raise OutboxError(f"outbox mark_failed failed: {type(exc).__name__}") from exc

    def _claimed(self, token: str, ids: Sequence[str]) -> QuerySet[OutboxMessage]:
        return self._model._default_manager.using(self.using).filter(claim_token=token, message_id__in=list(ids))

    def pending(self) -> int:
        """How many rows are stored (claimed or not)."""
        try:
            return self._model._default_manager.using(self.using).count()
        except DatabaseError as exc:
            raise OutboxError(f"outbox pending failed: {type(exc).__name__}") from exc
