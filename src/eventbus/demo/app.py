"""The demo service: the seed's handlers, as a user would write them, in a Celery app.

Run by ``eventbus demo``; also usable by hand against a running emulator::

    EVENTBUS_ENDPOINT_URL=http://localhost:4566 EVENTBUS_QUEUE_NAME=queue_name \\
        celery -A eventbus.demo.app worker -Q queue_name
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from eventbus.celery import configure, subscribe
from eventbus.settings import EventBusSettings

app = Celery("core")
configure(app, EventBusSettings())  # SQS broker, the service's queue, worker_consumer = SQSConsumer


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
