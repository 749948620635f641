"""The SQLAlchemy 2.x EntityRepository: one session per unit of work, callbacks after its commit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.exc import MultipleResultsFound, SQLAlchemyError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from eventbus.errors import EntityNotFound, RepositoryError
from eventbus.ports import EntityRepository


class SqlAlchemyEntityRepository(EntityRepository):
    """Entities of mapped classes. ``atomic()`` opens a session and transaction (or joins the open one)."""

    orm = "sqlalchemy"

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory
        self._current: ContextVar[tuple[Session, list[Callable[[], None]]] | None] = ContextVar(
            f"eventbus_sqlalchemy_{id(self)}", default=None
        )

    @property
    def session(self) -> Session:
        """The session of the open unit of work.

        Raises:
            RepositoryError: no ``atomic()`` block is open.
        """
        current = self._current.get()
        if current is None:
            raise RepositoryError("no unit of work is open: use repository.atomic()")
        return current[0]

    def current_session(self) -> Session | None:
        """The session of the open unit of work, or None outside ``atomic()`` (for stores that join it)."""
        current = self._current.get()
        return None if current is None else current[0]

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Commit on normal exit, roll back on a raise; then run the on-commit callbacks."""
        if self._current.get() is not None:
            yield
            return
        callbacks: list[Callable[[], None]] = []
        with self.session_factory() as session:
            token = self._current.set((session, callbacks))
            try:
                with session.begin():
                    yield
            except SQLAlchemyError as exc:
                raise RepositoryError(f"transaction failed: {type(exc).__name__}") from exc
            finally:
                self._current.reset(token)
        for callback in callbacks:
            callback()

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run after the open unit of work commits, or now outside one."""
        current = self._current.get()
        if current is None:
            callback()
        else:
            current[1].append(callback)

    def get(self, model: Any, **lookup: Any) -> Any:
        """``select(model).filter_by(**lookup)``: exactly one row, with typed errors."""
        name = getattr(model, "__name__", str(model))
        try:
            found = self.session.scalars(select(model).filter_by(**lookup)).one_or_none()
        except MultipleResultsFound as exc:
            raise RepositoryError(f"several {name} match the lookup on {sorted(lookup)}") from exc
        except StatementError as exc:
            if isinstance(exc.orig, (ValueError, TypeError)):
                raise EntityNotFound(f"no {name} can match the lookup on {sorted(lookup)}: invalid value") from exc
            raise RepositoryError(f"loading {name} failed: {type(exc).__name__}") from exc
        except SQLAlchemyError as exc:
            raise RepositoryError(f"loading {name} failed: {type(exc).__name__}") from exc
        if found is None:
            raise EntityNotFound(f"no {name} matches the lookup on {sorted(lookup)}")
        return found

    def delete(self, instance: Any) -> None:
        """Delete and flush, so a failure surfaces here."""
        try:
            self.session.delete(instance)
            self.session.flush()
        except SQLAlchemyError as exc:
            raise RepositoryError(f"deleting {type(instance).__name__} failed: {type(exc).__name__}") from exc

    def identity(self, instance: Any) -> str:
        """The primary key as text (joined with ``-`` for composite keys)."""
        key = inspect(instance).identity
        if not key:
            raise RepositoryError(f"{type(instance).__name__} has no identity yet (not flushed)")
        return "-".join(str(part) for part in key)
