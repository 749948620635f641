"""The Django ORM EntityRepository: ``Model.objects.using(alias).get(**lookup)``, ``transaction.on_commit``."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import DatabaseError, transaction

from eventbus.errors import EntityNotFound, RepositoryError
from eventbus.ports import EntityRepository


class DjangoEntityRepository(EntityRepository):
    """Entities of Django models, on one database alias (``default`` unless given)."""

    orm = "django"

    def __init__(self, using: str = "default") -> None:
        self.using = using

    def get(self, model: Any, **lookup: Any) -> Any:
        """``model._default_manager.using(alias).get(**lookup)`` with typed errors."""
        name = getattr(model, "__name__", str(model))
        try:
            return model._default_manager.using(self.using).get(**lookup)
        except ObjectDoesNotExist as exc:
            raise EntityNotFound(f"no {name} matches the lookup on {sorted(lookup)}") from exc
        except (ValidationError, ValueError) as exc:
            # a value the field cannot hold (e.g. "some_uuid" for a UUIDField) matches nothing
            raise EntityNotFound(f"no {name} can match the lookup on {sorted(lookup)}: invalid value") from exc
        except model.MultipleObjectsReturned as exc:
            raise RepositoryError(f"several {name} match the lookup on {sorted(lookup)}") from exc
        except DatabaseError as exc:
            raise RepositoryError(f"loading {name} failed: {type(exc).__name__}") from exc

    def delete(self, instance: Any) -> None:
        """``instance.delete(using=alias)``."""
        try:
            instance.delete(using=self.using)
        except DatabaseError as exc:
            raise RepositoryError(f"deleting {type(instance).__name__} failed: {type(exc).__name__}") from exc

    def atomic(self) -> AbstractContextManager[None]:
        """``transaction.atomic(using=alias)``."""
        return transaction.atomic(using=self.using)

    def on_commit(self, callback: Callable[[], None]) -> None:
        """``transaction.on_commit(callback, using=alias)``."""
        transaction.on_commit(callback, using=self.using)

    def identity(self, instance: Any) -> str:
        """``str(instance.pk)``."""
        return str(instance.pk)
