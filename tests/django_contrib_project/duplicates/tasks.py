"""A second ``@subscribe`` task for ``contribOrderPlaced``."""

from typing import Any

from eventbus.celery import subscribe


@subscribe(event="contribOrderPlaced")
def also_on_order_placed(task: Any, payload: Any, metadata: Any) -> None:
    return None
