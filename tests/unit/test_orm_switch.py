"""Switching a callback task's ORM is a container change: one task body, run on the in-memory and SQLAlchemy
repositories by overriding the container's ``repository`` provider (Celery's ``apply()``: real task execution,
in-process, no broker)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import String, create_engine
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column, sessionmaker

from eventbus.adapters.memory import InMemoryEntityRepository, InMemoryPublisher
from eventbus.adapters.sqlalchemy import SqlAlchemyEntityRepository
from eventbus.celery.tasks import CeleryTaskWithCallback
from eventbus.container import Container, build_container, set_container
from eventbus.payload import EventFailPayload, EventPayload
from eventbus.settings import EventBusSettings


class Base(DeclarativeBase):
    pass


class Ticket(Base):
    __tablename__ = "orm_switch_tickets"
    id = mapped_column(String(36), primary_key=True)
    title = mapped_column(String(50))


class TicketClosedPayload(EventPayload):
    id: str
    title: str


class TicketClosingFailedPayload(EventFailPayload):
    pass


app = Celery("orm-switch", set_as_current=False)


@app.task(
    bind=True,
    base=CeleryTaskWithCallback,
    model=Ticket,
    payload_cls=TicketClosedPayload,
    exception_payload_cls=TicketClosingFailedPayload,
    delete_on_success=True,
)
def close_ticket(task: CeleryTaskWithCallback, ticket_id: str) -> None:
    """The one task body both repositories run."""
    ticket = task.get_instance(id=ticket_id)
    if ticket.title == "refuse":
        raise PermissionError("not allowed")


@pytest.fixture
def container() -> Iterator[Container]:
    container = build_container(EventBusSettings(publisher="memory", service="helpdesk"))
    set_container(container)
    yield container
    set_container(None)


def memory_repository() -> tuple[InMemoryEntityRepository, Any]:
    repository = InMemoryEntityRepository()

    def add(title: str) -> str:
        ticket_id = str(uuid.uuid4())
        repository.add(Ticket(id=ticket_id, title=title))
        return ticket_id

    return repository, add


def sqlalchemy_repository(tmp_path: Path) -> tuple[SqlAlchemyEntityRepository, Any]:
    engine = create_engine(f"sqlite:///{tmp_path / 'tickets.sqlite3'}")
    Base.metadata.create_all(engine)

    def add(title: str) -> str:
        ticket_id = str(uuid.uuid4())
        with Session(engine) as session, session.begin():
            session.add(Ticket(id=ticket_id, title=title))
        return ticket_id

    return SqlAlchemyEntityRepository(sessionmaker(engine, expire_on_commit=False)), add


@pytest.mark.parametrize("kind", ["memory", "sqlalchemy"])
def test_the_same_task_body_runs_on_either_repository(container: Container, tmp_path: Path, kind: str) -> None:
    repository, add = memory_repository() if kind == "memory" else sqlalchemy_repository(tmp_path)
    container.repository.override(repository)  # the only change between the two runs
    good, bad = add("fine"), add("refuse")

    close_ticket.apply(kwargs={"ticket_id": good})
    close_ticket.apply(kwargs={"ticket_id": bad})

    published = container.publisher().published
    assert isinstance(container.publisher(), InMemoryPublisher)
    assert [(e.event_name, e.metadata.entity_id) for e in published] == [
        ("ticketClosed", good),
        ("ticketClosingFailed", bad),
    ]
    assert published[0].payload == {"id": good, "title": "fine"}
    assert published[1].metadata.error_code == "PermissionError"
    assert published[1].metadata.error_origin.startswith("helpdesk.")
    with repository.atomic():
        assert repository.get(Ticket, id=bad).title == "refuse"
    with pytest.raises(Exception, match="matches"), repository.atomic():
        repository.get(Ticket, id=good)  # delete_on_success
