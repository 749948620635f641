"""The Django ORM DeduplicationStore: rows of ``eventbus_dedup`` (model :class:`DedupRecord`), any database Django
supports, inside or outside the caller's transaction.

Every write is a single conditional statement, or an INSERT in its own savepoint, so concurrent claims from other
processes settle in the database: at most one UPDATE or INSERT wins, the others see its row. Times come from the
local clock (epoch seconds), so the hosts sharing a database need clocks synchronised to well within the lease.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from django.db import DatabaseError, IntegrityError, connections, transaction
from django.db.models import Q

from eventbus.errors import ConfigurationError, DeduplicationError
from eventbus.ports import Claim, DeduplicationStore

if TYPE_CHECKING:
    # imported when a store is built: importing the models of an app not in INSTALLED_APPS fails with Django's
    # RuntimeError about DedupRecord, where require_adapter_app says what to do
    from eventbus.adapters.django_orm.models import DedupRecord

T = TypeVar("T")

#: The Django app whose tables the deduplication store and the outbox use.
ADAPTER_APP = "eventbus.adapters.django_orm"


def require_adapter_app(store: str) -> None:
    """Refuse to build ``store`` in a process where the app holding its table is not installed.

    Raises:
        ConfigurationError: ``eventbus.adapters.django_orm`` is not in ``INSTALLED_APPS``.
    """
    from django.apps import apps

    if not apps.is_installed(ADAPTER_APP):
        raise ConfigurationError(
            f"the Django {store} keeps its rows in a table of the app {ADAPTER_APP!r}, which is not installed: add "
            f'"{ADAPTER_APP}" to INSTALLED_APPS and run manage.py migrate'
        )


def _record_model() -> type[DedupRecord]:
    require_adapter_app("deduplication store (EVENTBUS_DEDUP_STORE=django)")
    from eventbus.adapters.django_orm.models import DedupRecord

    return DedupRecord


#: A claim looks again when a concurrent claim, expiry or purge changed the row between its statements.
_CLAIM_ATTEMPTS = 5


class DjangoDeduplicationStore(DeduplicationStore):
    """Deduplication records in ``eventbus_dedup`` on one database alias (``default`` unless given)."""

    def __init__(self, using: str = "default") -> None:
        """Raises: ConfigurationError: the app ``eventbus.adapters.django_orm`` is not in ``INSTALLED_APPS``."""
        self._model = _record_model()
        self.using = using

    def _guard(self, operation: str, key: str, work: Callable[[], T]) -> T:
        """Run ``work``, turning the driver's errors into :class:`DeduplicationError`."""
        try:
            return work()
        except DatabaseError as exc:
            self._drop_if_broken()
            raise DeduplicationError(f"{operation} of {key!r} failed: {type(exc).__name__}") from exc

    def _drop_if_broken(self) -> None:
        """Close this thread's connection if it is unusable, so the next call reconnects.

        Django does that at the start and end of a request, and Celery around each task; a thread of neither (the
        lease keeper's, renewing claims) would otherwise keep failing on a connection the server closed. Inside the
        caller's transaction the connection is the caller's business.
        """
        connection = connections[self.using]
        if connection.in_atomic_block:
            return
        with contextlib.suppress(DatabaseError):  # closing a dead connection may fail too; it is dropped anyway
            connection.close_if_unusable_or_obsolete()

    def _insert(self, key: str, owner: str, state: Claim, expires_at: float) -> bool:
        """Insert the row; False if it exists already. The savepoint keeps an outer transaction usable."""
        try:
            with transaction.atomic(using=self.using):
                self._model.objects.using(self.using).create(
                    key=key, owner=owner, state=state.value, expires_at=expires_at
                )
        except IntegrityError:
            return False
        return True

    def claim(self, key: str, owner: str, lease: float) -> Claim:
        """See :meth:`DeduplicationStore.claim`."""
        return self._guard("claim", key, lambda: self._claim(key, owner, lease))

    def _claim(self, key: str, owner: str, lease: float) -> Claim:
        records = self._model.objects.using(self.using)
        for _ in range(_CLAIM_ATTEMPTS):
            now = time.time()
            taken = (
                records.filter(key=key)
                .filter(Q(expires_at__lt=now) | Q(state=Claim.IN_PROGRESS.value, owner=owner))
                .update(owner=owner, state=Claim.IN_PROGRESS.value, expires_at=now + lease)
            )
            if taken:
                return Claim.ACQUIRED
            row = records.filter(key=key, expires_at__gte=now).values_list("state", "owner").first()
            if row is None:
                # no live row: create it, unless another delivery does first (then look again)
                if self._insert(key, owner, Claim.IN_PROGRESS, now + lease):
                    return Claim.ACQUIRED
                continue
            state, holder = row
            if state == Claim.DONE.value:
                return Claim.DONE
            if holder != owner:
                return Claim.IN_PROGRESS
            # ours after all (the same owner claimed concurrently): the UPDATE renews it on the next turn
        raise DeduplicationError(f"claim of {key!r} failed: the record kept changing under {_CLAIM_ATTEMPTS} attempts")

    def complete(self, key: str, owner: str, keep_for: float) -> None:
        """See :meth:`DeduplicationStore.complete`."""
        self._guard("complete", key, lambda: self._complete(key, owner, keep_for))

    def _complete(self, key: str, owner: str, keep_for: float) -> None:
        records = self._model.objects.using(self.using)
        expires_at = time.time() + keep_for
        values = {"owner": owner, "state": Claim.DONE.value, "expires_at": expires_at}
        # the row may be gone (released, expired and purged): recreate it; if someone recreated it first, overwrite
        if not records.filter(key=key).update(**values) and not self._insert(key, owner, Claim.DONE, expires_at):
            records.filter(key=key).update(**values)

    def release(self, key: str, owner: str) -> None:
        """See :meth:`DeduplicationStore.release`."""
        records = self._model.objects.using(self.using)
        self._guard(
            "release", key, lambda: records.filter(key=key, owner=owner, state=Claim.IN_PROGRESS.value).delete()
        )

    def purge_expired(self) -> int:
        """See :meth:`DeduplicationStore.purge_expired`."""
        try:
            deleted, _ = self._model.objects.using(self.using).filter(expires_at__lt=time.time()).delete()
        except DatabaseError as exc:
            self._drop_if_broken()
            raise DeduplicationError(f"purge_expired failed: {type(exc).__name__}") from exc
        return deleted
