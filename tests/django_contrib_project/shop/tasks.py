"""A callback task whose payload the model can build (a field, a property, a validation alias), and a handler."""

from typing import Any
from uuid import UUID

from celery import shared_task
from pydantic import Field

from eventbus.celery import subscribe
from eventbus.celery.tasks import DjangoCeleryTaskWithCallback
from eventbus.payload import EventFailPayload, EventPayload
from tests.django_contrib_project.shop.models import Order


class OrderPaidPayload(EventPayload):
    id: UUID
    reference: str
    display_name: str  # a property of the model
    total: int = Field(validation_alias="total_cents")
    note: str = ""  # not required: the model need not have it


class OrderPaymentFailedPayload(EventFailPayload):
    pass


@shared_task(
    bind=True,
    base=DjangoCeleryTaskWithCallback,
    model=Order,
    payload_cls=OrderPaidPayload,
    exception_payload_cls=OrderPaymentFailedPayload,
)
def pay_order(task: DjangoCeleryTaskWithCallback, order_id: str) -> None:
    task.get_instance(id=order_id)


@subscribe(event="contribOrderPlaced")
def on_order_placed(task: Any, payload: Any, metadata: Any) -> None:
    return None
