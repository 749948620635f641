"""The EntityRepository port's contract: in-memory, Django and SQLAlchemy, the ORMs on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from eventbus.adapters.memory_repository import InMemoryEntityRepository
from eventbus.errors import EntityNotFound, RepositoryError
from eventbus.ports import EntityRepository


class Boom(Exception):
    pass


class RepositoryContract:
    """Every repository: get/delete inside a transaction, typed errors, rollback and on-commit semantics."""

    __test__ = False
    repository: EntityRepository
    model: Any

    def create(self, name: str) -> str:
        """Store an entity named ``name`` (committed) and return its id as text."""
        raise NotImplementedError

    def test_get_returns_the_matching_entity(self) -> None:
        entity_id = self.create("alpha")
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
        self.create("twin")
        self.create("twin")
        with self.repository.atomic(), pytest.raises(RepositoryError) as caught:
            self.repository.get(self.model, name="twin")
        assert not isinstance(caught.value, EntityNotFound)

    def test_delete_commits_with_the_transaction(self) -> None:
        entity_id = self.create("doomed")
        with self.repository.atomic():
            self.repository.delete(self.repository.get(self.model, id=entity_id))
        with self.repository.atomic(), pytest.raises(EntityNotFound):
            self.repository.get(self.model, id=entity_id)

    def test_rollback_undoes_a_delete_and_drops_on_commit_callbacks(self) -> None:
        entity_id = self.create("survivor")
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


# ------------------------------------------------------------------ in-memory


@dataclass
class Thing:
    id: str
    name: str


class TestInMemoryRepository(RepositoryContract):
    __test__ = True
    model = Thing

    @pytest.fixture(autouse=True)
    def _repository(self) -> None:
        self.repository = self.memory = InMemoryEntityRepository()

    def create(self, name: str) -> str:
        return self.memory.identity(self.memory.add(Thing(str(uuid.uuid4()), name)))


# ------------------------------------------------------------------ SQLAlchemy


def _sqlalchemy_model() -> Any:
    from sqlalchemy import String
    from sqlalchemy.orm import DeclarativeBase, mapped_column

    class Base(DeclarativeBase):
        pass

    class Widget(Base):
        __tablename__ = f"eventbus_contract_{uuid.uuid4().hex[:8]}"
        id = mapped_column(String(36), primary_key=True)
        name = mapped_column(String(50))

    return Widget


class SqlAlchemyContract(RepositoryContract):
    url: str

    @pytest.fixture(autouse=True)
    def _repository(self, database_url: str) -> Iterator[None]:
        from sqlalchemy import create_engine
        from sqlalchemy.orm import sessionmaker

        from eventbus.adapters.sqlalchemy import SqlAlchemyEntityRepository

        self.model = _sqlalchemy_model()
        self.engine = create_engine(database_url)
        self.model.metadata.create_all(self.engine)
        self.repository = SqlAlchemyEntityRepository(sessionmaker(self.engine, expire_on_commit=False))
        yield
        self.model.metadata.drop_all(self.engine)
        self.engine.dispose()

    def create(self, name: str) -> str:
        from sqlalchemy.orm import Session

        entity_id = str(uuid.uuid4())
        with Session(self.engine) as session, session.begin():
            session.add(self.model(id=entity_id, name=name))
        return entity_id

    def test_driver_errors_are_wrapped(self) -> None:
        with self.repository.atomic(), pytest.raises(RepositoryError) as caught:
            self.repository.get(self.model, no_such_column=1)
        assert caught.value.__cause__ is not None


class TestSqlAlchemyOnSqlite(SqlAlchemyContract):
    __test__ = True

    @pytest.fixture
    def database_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'contract.sqlite3'}"


@pytest.mark.integration
@pytest.mark.postgres
class TestSqlAlchemyOnPostgres(SqlAlchemyContract):
    __test__ = True

    @pytest.fixture
    def database_url(self, postgres_url: str) -> str:
        return postgres_url.replace("postgresql://", "postgresql+psycopg://")


# ------------------------------------------------------------------ Django


class DjangoContract(RepositoryContract):
    alias = "default"

    @pytest.fixture(autouse=True)
    def _repository(self, django_ready: None) -> None:
        from django.core.management import call_command

        from eventbus.adapters.django_orm import DjangoEntityRepository
        from tests.django_project.entities.models import Entity

        call_command("migrate", database=self.alias, verbosity=0)
        Entity.objects.using(self.alias).filter(name="twin").delete()
        self.model = Entity
        self.repository = DjangoEntityRepository(using=self.alias)

    def create(self, name: str) -> str:
        return str(self.model.objects.using(self.alias).create(name=name).id)

    def test_an_invalid_lookup_value_matches_nothing(self) -> None:
        with self.repository.atomic(), pytest.raises(EntityNotFound):
            self.repository.get(self.model, id="some_uuid")  # the seed's placeholder


class TestDjangoOnSqlite(DjangoContract):
    __test__ = True


@pytest.mark.integration
@pytest.mark.postgres
class TestDjangoOnPostgres(DjangoContract):
    __test__ = True
    alias = "postgres"

    @pytest.fixture(autouse=True)
    def _needs_postgres(self, postgres_url: str) -> None:
        pass
