"""The demo service: the seed's handlers and a callback task, as a user would write them.

Run by ``eventbus demo``; also usable by hand against a running emulator::

    EVENTBUS_ENDPOINT_URL=http://localhost:4566 EVENTBUS_QUEUE_NAME=queue_name \\
        EVENTBUS_DATABASE_URL=sqlite:////tmp/demo.sqlite3 celery -A eventbus.demo.app worker -Q queue_name
"""

from __future__ import annotations

import uuid
from typing import Any

from celery import Celery, shared_task
from sqlalchemy import String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from eventbus.celery import configure, subscribe
from eventbus.celery.tasks import SQLAlchemyCeleryTaskWithCallback
from eventbus.core.envelope import Metadata
from eventbus.payload import EventFailPayload, EventPayload
from eventbus.settings import EventBusSettings

app = Celery("core")
configure(app)  # SQS broker, the service's queue, worker_consumer = SQSConsumer


@subscribe(bind=True, name="SomeTrickyName")
def test(cls: Any, *args: Any, **kwargs: Any) -> None:
    """The seed's first handler: subscribed to ``SomeTrickyName``."""
    print(f"TASK EXECUTION =>>>>>>>>>>>>>>>>>> {cls} {args}, {kwargs}", flush=True)


@subscribe
def test_some_task(cls: Any, *args: Any, **kwargs: Any) -> None:
    """The seed's second handler: subscribed to ``testSomeTask``."""
    print(f"TASK EXECUTION =>>>>>>>>>>>>>>>>>> {cls} {args}, {kwargs}", flush=True)


@subscribe
def do_good(cls: Any, *args: Any, **kwargs: Any) -> None:
    """Handles the seed's ``doGood`` event."""
    print(f"doGood handled: payload={kwargs['payload']} entityId={kwargs['metadata'].entity_id}", flush=True)


@subscribe
def do_nice(cls: Any, *args: Any, **kwargs: Any) -> None:
    """Handles the seed's ``doNice`` event (containsPersonalData: its payload is not printed)."""
    print(f"doNice handled: entityId={kwargs['metadata'].entity_id} (payload withheld: personal data)", flush=True)


@app.task  # type: ignore[untyped-decorator]
def plain_celery_task(x: int) -> int:
    """An ordinary Celery task on the same queue, to show task messages keep working."""
    print(f"plain Celery task ran with x={x}", flush=True)
    return x * 2


# --- a callback task: ship an order, announce orderShipped / orderShippingFailed ---


class Base(DeclarativeBase):
    """The demo's SQLAlchemy models."""


class OutOfStock(Exception):
    """Raised by ``Order.ship`` for orders set to fail."""

    code = "OutOfStock"


class Order(Base):
    """An order to ship."""

    __tablename__ = "demo_orders"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    item: Mapped[str] = mapped_column(String(50))
    mode: Mapped[str] = mapped_column(String(10), default="ok")

    def ship(self) -> None:
        """Ship it, or fail as ``mode`` says."""
        if self.mode == "fail":
            raise OutOfStock(f"no {self.item} left")


class OrderShippedPayload(EventPayload):
    """Published when ``ship_order`` succeeds (event ``orderShipped``)."""

    id: str
    item: str


class OrderShippingFailedPayload(EventFailPayload):
    """Published when ``ship_order`` finally fails (event ``orderShippingFailed``)."""


@shared_task(  # type: ignore[untyped-decorator]
    bind=True,
    base=SQLAlchemyCeleryTaskWithCallback,
    model=Order,
    payload_cls=OrderShippedPayload,
    exception_payload_cls=OrderShippingFailedPayload,
    delete_on_failure=True,
)
def ship_order(task: SQLAlchemyCeleryTaskWithCallback, order_id: str) -> None:
    """Load the order through the repository and ship it."""
    order: Order = task.get_instance(id=order_id)
    order.ship()


@subscribe
def order_shipped(task: Any, payload: OrderShippedPayload, metadata: Metadata) -> None:
    """The success callback event, received back from the topic."""
    print(f"success callback: orderShipped id={payload.id} item={payload.item}", flush=True)


@subscribe
def order_shipping_failed(task: Any, payload: OrderShippingFailedPayload, metadata: Metadata) -> None:
    """The failure callback event, received back from the topic."""
    print(
        f"failure callback: orderShippingFailed id={payload.entity_id} errorCode={metadata.error_code} "
        f"errorOrigin={metadata.error_origin} message={payload.error_message!r}",
        flush=True,
    )


def _engine() -> Any:
    return create_engine(EventBusSettings().database_url or "sqlite://")


def create_schema() -> None:
    """Create the demo's table."""
    Base.metadata.create_all(_engine())


def add_order(item: str, mode: str) -> str:
    """Store an order; return its id."""
    order_id = str(uuid.uuid4())
    with Session(_engine()) as session, session.begin():
        session.add(Order(id=order_id, item=item, mode=mode))
    return order_id
