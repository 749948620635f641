"""An example service on SQLAlchemy: a callback task that publishes ``invoicePaid`` / ``invoicePaymentFailed``.

The worker: ``celery -A examples.sqlalchemy_service.app worker -Q queue_name`` with ``EVENTBUS_DATABASE_URL`` set.
"""

from __future__ import annotations

import uuid
from typing import Any

from celery import Celery, shared_task
from sqlalchemy import Integer, String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from eventbus.celery import configure, subscribe
from eventbus.celery.tasks import SQLAlchemyCeleryTaskWithCallback
from eventbus.core.envelope import Metadata
from eventbus.payload import EventFailPayload, EventPayload
from eventbus.settings import EventBusSettings

app = Celery("billing")
configure(app)


class Base(DeclarativeBase):
    pass


class CardDeclined(Exception):
    code = "CardDeclined"


class Invoice(Base):
    __tablename__ = "example_invoices"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    amount: Mapped[int] = mapped_column(Integer)

    def pay(self) -> None:
        if self.amount > 1000:
            raise CardDeclined("over the limit")


class InvoicePaidPayload(EventPayload):
    id: str
    amount: int


class InvoicePaymentFailedPayload(EventFailPayload):
    pass


@shared_task(
    bind=True,
    base=SQLAlchemyCeleryTaskWithCallback,
    model=Invoice,
    payload_cls=InvoicePaidPayload,
    exception_payload_cls=InvoicePaymentFailedPayload,
)
def pay_invoice(task: SQLAlchemyCeleryTaskWithCallback, invoice_id: str) -> None:
    task.get_instance(id=invoice_id).pay()


@subscribe
def invoice_paid(task: Any, payload: InvoicePaidPayload, metadata: Metadata) -> None:
    print(f"success callback: invoicePaid {payload.id} amount={payload.amount}", flush=True)


@subscribe
def invoice_payment_failed(task: Any, payload: InvoicePaymentFailedPayload, metadata: Metadata) -> None:
    print(f"failure callback: invoicePaymentFailed {payload.entity_id} errorCode={metadata.error_code}", flush=True)


def add_invoice(amount: int) -> str:
    engine = create_engine(EventBusSettings().database_url or "")
    Base.metadata.create_all(engine)
    invoice_id = str(uuid.uuid4())
    with Session(engine) as session, session.begin():
        session.add(Invoice(id=invoice_id, amount=amount))
    return invoice_id
