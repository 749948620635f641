"""The EntityRepository port's contract suite.

Subclass :class:`EntityRepositoryContract`, name the subclass ``Test...``, set ``model`` and implement two hooks::

    class TestMyRepository(EntityRepositoryContract):
        model = Widget  # an entity class with an ``id`` and a text ``name``

        def make_repository(self) -> EntityRepository:
            ...  # the repository under test, on storage where ``model`` lives

        def create_entity(self, name: str) -> str:
            ...  # store (and commit) a ``model`` named ``name``; return its id as text

``make_repository`` is called once per test, on first use. Collection: a subclass runs when its name starts with
``Test`` (``__test__`` is set from the name, unless the class sets it), so an intermediate subclass named otherwise runs
nothing. Set-up the adapter needs (a database, a schema, settings) goes in the hooks or in the subclass's own pytest
fixtures, which run before each test body.
"""

from __future__ import annotations

import uuid
from functools import cached_property
from typing import Any

import pytest

from eventbus.errors import EntityNotFound, RepositoryError
from eventbus.ports import EntityRepository
from eventbus.testing.contracts.base import Contract

__all__ = ["EntityRepositoryContract"]


class Boom(Exception):
    """Raised on purpose inside a transaction."""


class EntityRepositoryContract(Contract):
    """Every repository: get/delete inside a transaction, typed errors, rollback and on-commit semantics."""

    #: The entity class the tests look up: its instances have an ``id`` and a ``name`` attribute.
    model: Any

    def make_repository(self) -> EntityRepository:
        """Hook: the repository under test, able to load and delete :attr:`model` entities."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_repository()")

    def create_entity(self, name: str) -> str:
        """Hook: store a :attr:`model` entity named ``name``, committed, and return its id as text."""
        raise NotImplementedError(f"{type(self).__name__} must implement create_entity()")

    @cached_property
    def repository(self) -> EntityRepository:
        """This test's repository (:meth:`make_repository`, called once)."""
        return self.make_repository()

    def test_get_returns_the_matching_entity(self) -> None:
        entity_id = self.create_entity("alpha")
        with self.repository.atomic():
            found = self.repository.get(self.model, id=entity_id)
            assert found.name == "alpha"
            assert self.repository.identity(found) == entity_id

    def test_missing_entity_raises_entity_not_found(self) -> None:
        with self.repository.atomic(), pytest.raises(EntityNotFound) as caught:
            self.repository.get(self.model, id=str(uuid.uuid4()))
        assert caught.value.code == "EntityNotFound"
        assert isinstance(caught.value, RepositoryError)

    def test_several_matches_raise_repository_error(self) -> None:
        self.create_entity("twin")
        self.create_entity("twin")
        with self.repository.atomic(), pytest.raises(RepositoryError) as caught:
            self.repository.get(self.model, name="twin")
        assert not isinstance(caught.value, EntityNotFound)

    def test_delete_commits_with_the_transaction(self) -> None:
        entity_id = self.create_entity("doomed")
        with self.repository.atomic():
            self.repository.delete(self.repository.get(self.model, id=entity_id))
        with self.repository.atomic(), pytest.raises(EntityNotFound):
            self.repository.get(self.model, id=entity_id)

    def test_rollback_undoes_a_delete_and_drops_on_commit_callbacks(self) -> None:
        entity_id = self.create_entity("survivor")
        called: list[str] = []

        def delete_then_fail() -> None:
            with self.repository.atomic():
                self.repository.delete(self.repository.get(self.model, id=entity_id))
                self.repository.on_commit(lambda: called.append("committed"))
                raise Boom

        with pytest.raises(Boom):
            delete_then_fail()
        assert called == []
        with self.repository.atomic():
            assert self.repository.get(self.model, id=entity_id).name == "survivor"

    def test_on_commit_runs_after_the_outermost_commit(self) -> None:
        called: list[str] = []
        with self.repository.atomic():
            with self.repository.atomic():
                self.repository.on_commit(lambda: called.append("committed"))
            assert called == []
        assert called == ["committed"]
