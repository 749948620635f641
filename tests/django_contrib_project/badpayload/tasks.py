"""``OrderShippedPayload.tracking_number`` is nowhere on ``Order``."""

from uuid import UUID

from celery import shared_task

from eventbus.celery.tasks import DjangoCeleryTaskWithCallback
from eventbus.payload import EventPayload
from tests.django_contrib_project.shop.models import Order


class OrderShippedPayload(EventPayload):
    id: UUID
    tracking_number: str
    carrier: str = "post"


@shared_task(bind=True, base=DjangoCeleryTaskWithCallback, model=Order, payload_cls=OrderShippedPayload)
def ship_order(task: DjangoCeleryTaskWithCallback, order_id: str) -> None:
    task.get_instance(id=order_id)
