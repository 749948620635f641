"""A small Celery app for ``eventbus topology -A``: two ``@subscribe`` handlers, one with a 120 s time limit.

Loaded only in a subprocess (``eventbus topology``, ``eventbus emulator -A``): importing it registers shared tasks in
every Celery app of the importing process.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from eventbus.celery import subscribe

__all__ = ["ORDER_PLACED", "ORDER_SHIPPED", "app"]

ORDER_PLACED = "topologyOrderPlaced"
ORDER_SHIPPED = "topologyOrderShipped"

app = Celery("topology_app")


@subscribe(event=ORDER_PLACED, time_limit=120)
def order_placed(task: Any, payload: Any, metadata: Any) -> None:
    """Slow work: its time limit bounds the queue's visibility timeout from below."""


@subscribe(event=ORDER_SHIPPED)
def order_shipped(task: Any, payload: Any, metadata: Any) -> None:
    """Quick work."""
