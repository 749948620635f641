"""A small Celery app for ``eventbus asyncapi -A``: handlers with and without payload classes (one with nested
models and enums, one with personal data), a callback task with success and failure payload classes, and a payload
class declared with :func:`eventbus.payload.publishes`.

Loaded only in a subprocess (``eventbus asyncapi``): importing it registers shared tasks in every Celery app of the
importing process.
"""

from __future__ import annotations

from datetime import date
from enum import IntEnum, StrEnum
from typing import Any

from celery import Celery, shared_task
from pydantic import BaseModel, Field

from eventbus.celery import subscribe
from eventbus.celery.tasks import CeleryTaskWithCallback
from eventbus.payload import EventFailPayload, EventPayload, publishes

__all__ = ["app"]

app = Celery("asyncapi_app")


class Currency(StrEnum):
    """ISO 4217 currency codes the shop takes."""

    EUR = "EUR"
    GBP = "GBP"


class Priority(IntEnum):
    LOW = 1
    HIGH = 2


class Money(BaseModel):
    amount: str
    currency: Currency


class Line(BaseModel):
    sku: str
    quantity: int = Field(ge=1)
    price: Money


class AsyncapiOrderPlacedPayload(EventPayload):
    """An order was placed: its lines and total."""

    order_id: str = Field(alias="orderId")
    lines: list[Line]
    total: Money
    priority: Priority = Priority.LOW
    delivery_date: date | None = Field(default=None, alias="deliveryDate")


class AsyncapiCustomerRegisteredPayload(EventPayload):
    """A customer registered: name and email (personal data)."""

    contains_personal_data = True

    customer_id: str = Field(alias="customerId")
    email: str
    full_name: str = Field(alias="fullName")


class AsyncapiInvoiceSentPayload(EventPayload):
    """The invoice of an order was sent."""

    order_id: str = Field(alias="orderId")
    total: Money


class AsyncapiInvoiceFailedPayload(EventFailPayload):
    """Sending the invoice failed."""


@publishes
class AsyncapiShopOpenedPayload(EventPayload):
    """The shop opened for the day: published outside any callback task."""

    opened_at: str = Field(alias="openedAt")


@subscribe(event="asyncapiOrderPlaced")
def order_placed(task: Any, payload: AsyncapiOrderPlacedPayload, metadata: Any) -> None:
    """Takes the typed payload (the annotation declares the class)."""


@subscribe(event="asyncapiCustomerRegistered", payload_cls=AsyncapiCustomerRegisteredPayload)
def customer_registered(task: Any, payload: Any, metadata: Any) -> None:
    """Personal data: the document tags the message."""


@subscribe(event="asyncapiStockCounted")
def stock_counted(task: Any, payload: Any, metadata: Any) -> None:
    """No payload class: the payload is a free-form object."""


@shared_task(
    bind=True,
    base=CeleryTaskWithCallback,
    name="asyncapi_app.send_invoice",
    payload_cls=AsyncapiInvoiceSentPayload,
    exception_payload_cls=AsyncapiInvoiceFailedPayload,
)
def send_invoice(task: Any, order_id: str) -> None:
    """Publishes asyncapiInvoiceSent on success, asyncapiInvoiceFailed on the final failure."""
