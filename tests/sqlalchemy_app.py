"""The SQLAlchemy twin of the seed's callback task: a mapped ``Gadget`` and tasks on SQLAlchemyCeleryTaskWithCallback.

The task bodies are the Django ones with another base class; the session comes from the container
(``EVENTBUS_DATABASE_URL``).
"""

from __future__ import annotations

import uuid

from celery import Celery, shared_task
from sqlalchemy import Integer, String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from eventbus.celery import configure
from eventbus.celery.tasks import SQLAlchemyCeleryTaskWithCallback
from eventbus.container import build_container
from eventbus.payload import EventFailPayload, EventPayload
from eventbus.settings import EventBusSettings

app = Celery("core")
configure(app, build_container())  # the environment as the test set it, not a container built earlier


class Base(DeclarativeBase):
    pass


class ActionRefused(Exception):
    code = "ActionRefused"


class Gadget(Base):
    __tablename__ = "eventbus_test_gadgets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    name: Mapped[str] = mapped_column(String(100), default="")
    mode: Mapped[str] = mapped_column(String(20), default="ok")
    touched: Mapped[int] = mapped_column(Integer, default=0)

    def do_action(self, attempt: int = 0) -> None:
        self.touched += 1
        if self.mode == "fail" or (self.mode == "fail_once" and attempt == 0):
            raise ActionRefused("refused")


class GadgetActedPayload(EventPayload):
    id: str
    name: str


class GadgetActionFailedPayload(EventFailPayload):
    pass


@shared_task(
    bind=True,
    base=SQLAlchemyCeleryTaskWithCallback,
    model=Gadget,
    payload_cls=GadgetActedPayload,
    exception_payload_cls=GadgetActionFailedPayload,
    delete_on_failure=True,
    delete_on_success=False,
)
def do_gadget_action(task: SQLAlchemyCeleryTaskWithCallback, gadget_id: str) -> None:
    gadget: Gadget = task.get_instance(id=gadget_id)
    gadget.do_action()


@shared_task(
    bind=True,
    base=SQLAlchemyCeleryTaskWithCallback,
    model=Gadget,
    payload_cls=GadgetActedPayload,
    exception_payload_cls=GadgetActionFailedPayload,
    delete_on_success=True,
    autoretry_for=(ActionRefused,),
    max_retries=2,
    default_retry_delay=0,
)
def retrying_gadget_action(task: SQLAlchemyCeleryTaskWithCallback, gadget_id: str) -> None:
    gadget: Gadget = task.get_instance(id=gadget_id)
    gadget.do_action(attempt=task.request.retries)


class StrictGadgetPayload(EventPayload):
    id: str
    touched: str  # an int on the model
    colour: str  # not on the model at all


class StrictGadgetFailedPayload(EventFailPayload):
    pass


@shared_task(
    bind=True,
    base=SQLAlchemyCeleryTaskWithCallback,
    model=Gadget,
    payload_cls=StrictGadgetPayload,
    exception_payload_cls=StrictGadgetFailedPayload,
)
def strict_gadget_action(task: SQLAlchemyCeleryTaskWithCallback, gadget_id: str) -> None:
    task.get_instance(id=gadget_id).do_action()


class GadgetNoticedPayload(EventPayload):
    id: str


@shared_task(
    bind=True,
    base=SQLAlchemyCeleryTaskWithCallback,
    model=Gadget,
    payload_cls=GadgetActedPayload,
    exception_payload_cls=GadgetActionFailedPayload,
)
def announce_then_act_gadget(task: SQLAlchemyCeleryTaskWithCallback, gadget_id: str) -> None:
    """Publishes ``gadgetNoticed`` in the transaction, then acts: a failing action takes the notice back too."""
    from eventbus.container import get_container

    gadget: Gadget = task.get_instance(id=gadget_id)
    get_container().event_publisher().publish(GadgetNoticedPayload(id=gadget.id), entity_id=gadget.id)
    gadget.do_action()


def _engine():  # type: ignore[no-untyped-def]
    return create_engine(EventBusSettings().database_url or "")


def create_schema() -> None:
    Base.metadata.create_all(_engine())


def add_gadget(mode: str) -> str:
    gadget_id = str(uuid.uuid4())
    with Session(_engine()) as session, session.begin():
        session.add(Gadget(id=gadget_id, name=mode, mode=mode, touched=0))
    return gadget_id


def gadget_exists(gadget_id: str) -> bool:
    with Session(_engine()) as session:
        return session.scalar(select(Gadget).filter_by(id=gadget_id)) is not None


def gadget_touched(gadget_id: str) -> int:
    with Session(_engine()) as session:
        gadget = session.scalar(select(Gadget).filter_by(id=gadget_id))
        return -1 if gadget is None else gadget.touched
