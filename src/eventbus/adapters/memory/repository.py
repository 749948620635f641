"""An in-memory EntityRepository with real transaction semantics (rollback restores, on_commit waits)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from eventbus.errors import EntityNotFound, RepositoryError
from eventbus.ports import EntityRepository


class InMemoryEntityRepository(EntityRepository):
    """Entities kept per model class in dicts keyed by ``id_field``; ``add()`` stores one."""

    orm = "memory"

    def __init__(self, id_field: str = "id") -> None:
        self.id_field = id_field
        self._tables: dict[Any, dict[str, Any]] = {}
        self._depth = 0
        self._pending: list[Callable[[], None]] = []

    def add(self, instance: Any) -> Any:
        """Store ``instance`` under its model class and id."""
        self._tables.setdefault(type(instance), {})[self.identity(instance)] = instance
        return instance

    def get(self, model: Any, **lookup: Any) -> Any:
        """The one stored instance of ``model`` whose attributes equal ``lookup``."""
        if not lookup:
            raise RepositoryError("a lookup needs at least one field")
        found = [
            item
            for item in self._tables.get(model, {}).values()
            if all(str(getattr(item, key, object())) == str(value) for key, value in lookup.items())
        ]
        if not found:
            raise EntityNotFound(f"no {getattr(model, '__name__', model)} matches the lookup on {sorted(lookup)}")
        if len(found) > 1:
            raise RepositoryError(
                f"{len(found)} {getattr(model, '__name__', model)} match the lookup on {sorted(lookup)}"
            )
        return found[0]

    def delete(self, instance: Any) -> None:
        """Remove ``instance``."""
        table = self._tables.get(type(instance), {})
        if table.pop(self.identity(instance), None) is None:
            raise RepositoryError(f"{type(instance).__name__} {self.identity(instance)} is not stored")

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Nested blocks join the outermost one; a raise restores the tables as they were."""
        snapshot = {model: dict(rows) for model, rows in self._tables.items()} if self._depth == 0 else None
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if snapshot is not None:
                self._tables, self._pending = snapshot, []
            raise
        self._depth -= 1
        if self._depth == 0:
            callbacks, self._pending = self._pending, []
            for callback in callbacks:
                callback()

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run after the outermost ``atomic()`` commits, or now outside one."""
        if self._depth:
            self._pending.append(callback)
        else:
            callback()

    def identity(self, instance: Any) -> str:
        """``str(instance.<id_field>)``."""
        return str(getattr(instance, self.id_field))

    def snapshot(self) -> dict[Any, dict[str, Any]]:
        """A copy of what is stored, for assertions."""
        return copy.copy(self._tables)
