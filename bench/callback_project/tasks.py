"""The two ways the bench ships an order: by hand (the baseline) and as a ``DjangoCeleryTaskWithCallback``.

Both bodies are the same (load the order, set ``status``, ``save(update_fields=["status"])``) in one transaction, and
both publish an ``orderShipped`` envelope of the same shape after the commit. The hand-written task does it with
``transaction.atomic()``, ``transaction.on_commit`` and one boto3 SNS client per process (``Publish``, the
``eventName`` message attribute, as ``SnsPublisher.publish`` sends it); the callback task leaves all of that to
eventbus (direct publish after commit, or the outbox with ``EVENTBUS_OUTBOX=django``).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import boto3
from celery import shared_task
from django.db import transaction

from bench.callback_project.orders.models import Order
from eventbus.celery.tasks import DjangoCeleryTaskWithCallback
from eventbus.payload import EventFailPayload, EventPayload

__all__ = ["OrderShippedPayload", "OrderShippingFailedPayload", "ship_order", "ship_order_by_hand"]

#: Task names the bench fills the queue with.
BY_HAND = "bench.callback.ship_order_by_hand"
WITH_CALLBACK = "bench.callback.ship_order"

_sns_client: Any = None


def _sns() -> Any:
    """This process's boto3 SNS client, built on first use (in the pool child, after the fork)."""
    global _sns_client
    if _sns_client is None:
        _sns_client = boto3.client(
            "sns",
            endpoint_url=os.environ["EVENTBUS_ENDPOINT_URL"],
            region_name=os.environ.get("EVENTBUS_REGION", "eu-west-2"),
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
    return _sns_client


class OrderShippedPayload(EventPayload):
    """The success event, ``orderShipped``."""

    id: UUID
    status: str


class OrderShippingFailedPayload(EventFailPayload):
    """The failure event, ``orderShippingFailed`` (never sent in the bench: every order exists)."""


def ship(order: Order) -> None:
    """The work both tasks do: one field updated and saved."""
    order.status = "shipped"
    order.save(update_fields=["status"])


def shipped_envelope(order: Order) -> str:
    """The ``orderShipped`` envelope as eventbus writes it (same keys, order and separators)."""
    metadata = {
        "containsPersonalData": False,
        "tracestate": "",
        "traceparent": f"00-{uuid4().hex}-{uuid4().hex[:16]}-01",
        "errorOrigin": "",
        "errorCode": "",
        "authorization": "",
        "publishDate": datetime.now(UTC).replace(tzinfo=None).isoformat(),
        "entityId": str(order.pk),
        "publisherName": os.environ.get("EVENTBUS_SERVICE", "bench"),
        "eventName": "orderShipped",
    }
    payload = {"id": str(order.pk), "status": order.status}
    return json.dumps({"metadata": metadata, "payload": payload}, separators=(", ", ": "), ensure_ascii=False)


@shared_task(name=BY_HAND)  # type: ignore[untyped-decorator]
def ship_order_by_hand(order_id: str) -> None:
    """The baseline: what a service writes without eventbus's callback base."""
    with transaction.atomic():
        order = Order.objects.get(id=order_id)
        ship(order)
        body = shipped_envelope(order)
        attributes = {"eventName": {"DataType": "String", "StringValue": "orderShipped"}}
        topic = os.environ["EVENTBUS_TOPIC_ARN"]
        transaction.on_commit(lambda: _sns().publish(TopicArn=topic, Message=body, MessageAttributes=attributes))


@shared_task(  # type: ignore[untyped-decorator]
    bind=True,
    base=DjangoCeleryTaskWithCallback,
    name=WITH_CALLBACK,
    model=Order,
    payload_cls=OrderShippedPayload,
    exception_payload_cls=OrderShippingFailedPayload,
    delete_on_failure=False,
    delete_on_success=False,
)
def ship_order(task: DjangoCeleryTaskWithCallback, order_id: str) -> None:
    """The same work as a callback task: eventbus runs the transaction and publishes ``orderShipped``."""
    ship(task.get_instance(id=order_id))
