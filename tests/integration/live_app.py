"""The Celery app of the live test kit's tests (``tests/integration/test_testing_live.py``): two ``@subscribe``
handlers that print what they handled, one of which publishes a follow-up event.

Loaded only in subprocesses (the kit's provisioning step and ``celery worker``): importing it registers shared tasks in
every Celery app of the importing process.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from eventbus.celery import configure, subscribe
from eventbus.container import get_container
from eventbus.core.envelope import Metadata
from eventbus.payload import EventPayload

__all__ = ["LiveKitOrderCancelled", "LiveKitOrderConfirmed", "LiveKitOrderPlaced", "app"]

app = Celery("live_app")
configure(app)


class LiveKitOrderPlaced(EventPayload):
    """An order to confirm: its handler publishes :class:`LiveKitOrderConfirmed`."""

    event_name = "liveKitOrderPlaced"
    order_id: int


class LiveKitOrderCancelled(EventPayload):
    """An order cancelled: its handler only prints."""

    event_name = "liveKitOrderCancelled"
    order_id: int


class LiveKitOrderConfirmed(EventPayload):
    """Published by the worker; ``queue`` says which worker confirmed it."""

    event_name = "liveKitOrderConfirmed"
    order_id: int
    queue: str


@subscribe(event=LiveKitOrderPlaced.event_name)
def live_kit_order_placed(task: Any, payload: LiveKitOrderPlaced, metadata: Metadata) -> None:
    """Print, then publish the confirmation through the container's publisher."""
    queue = get_container().settings().queue_name
    print(f"liveKit placed order {payload.order_id} handled on {queue}", flush=True)
    confirmed = LiveKitOrderConfirmed(order_id=payload.order_id, queue=queue)
    get_container().event_publisher().publish(confirmed, entity_id=metadata.entity_id)


@subscribe(event=LiveKitOrderCancelled.event_name)
def live_kit_order_cancelled(task: Any, payload: LiveKitOrderCancelled, metadata: Metadata) -> None:
    """Print only."""
    queue = get_container().settings().queue_name
    print(f"liveKit cancelled order {payload.order_id} handled on {queue}", flush=True)
