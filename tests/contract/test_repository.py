"""The EntityRepository contract (:mod:`eventbus.testing.contracts.repository`): in-memory, Django and SQLAlchemy,
the ORMs on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from eventbus.adapters.memory import InMemoryEntityRepository
from eventbus.errors import EntityNotFound, RepositoryError
from eventbus.ports import EntityRepository
from eventbus.testing.contracts import EntityRepositoryContract

# ------------------------------------------------------------------ in-memory


@dataclass
class Thing:
    id: str
    name: str


class TestInMemoryRepository(EntityRepositoryContract):
    model = Thing

    @pytest.fixture(autouse=True)
    def _repository(self) -> None:
        self.memory = InMemoryEntityRepository()

    def make_repository(self) -> EntityRepository:
        return self.memory

    def create_entity(self, name: str) -> str:
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


class SqlAlchemyContract(EntityRepositoryContract):
    @pytest.fixture(autouse=True)
    def _engine(self, database_url: str) -> Iterator[None]:
        from sqlalchemy import create_engine

        self.model = _sqlalchemy_model()
        self.engine = create_engine(database_url)
        self.model.metadata.create_all(self.engine)
        yield
        self.model.metadata.drop_all(self.engine)
        self.engine.dispose()

    def make_repository(self) -> EntityRepository:
        from sqlalchemy.orm import sessionmaker

        from eventbus.adapters.sqlalchemy import SqlAlchemyEntityRepository

        return SqlAlchemyEntityRepository(sessionmaker(self.engine, expire_on_commit=False))

    def create_entity(self, name: str) -> str:
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
    @pytest.fixture
    def database_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'contract.sqlite3'}"


@pytest.mark.integration
@pytest.mark.postgres
class TestSqlAlchemyOnPostgres(SqlAlchemyContract):
    @pytest.fixture
    def database_url(self, postgres_url: str) -> str:
        return postgres_url.replace("postgresql://", "postgresql+psycopg://")


# ------------------------------------------------------------------ Django


class DjangoContract(EntityRepositoryContract):
    alias: str

    @pytest.fixture(autouse=True)
    def _database(self, django_ready: None, django_alias: str) -> None:
        from django.core.management import call_command

        from tests.django_project.entities.models import Entity

        self.alias = django_alias
        call_command("migrate", database=self.alias, verbosity=0)
        Entity.objects.using(self.alias).filter(name="twin").delete()
        self.model = Entity

    def make_repository(self) -> EntityRepository:
        from eventbus.adapters.django_orm import DjangoEntityRepository

        return DjangoEntityRepository(using=self.alias)

    def create_entity(self, name: str) -> str:
        return str(self.model.objects.using(self.alias).create(name=name).id)

    def test_an_invalid_lookup_value_matches_nothing(self) -> None:
        with self.repository.atomic(), pytest.raises(EntityNotFound):
            self.repository.get(self.model, id="some_uuid")  # the seed's placeholder


class TestDjangoOnSqlite(DjangoContract):
    @pytest.fixture
    def django_alias(self) -> str:
        return "default"


@pytest.mark.integration
@pytest.mark.postgres
class TestDjangoOnPostgres(DjangoContract):
    @pytest.fixture
    def django_alias(self, postgres_url: str) -> str:
        return "postgres"
