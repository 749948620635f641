"""The Celery app the worker integration tests run: seed-style handlers that record what they saw.

Configured from ``EVENTBUS_*`` variables; records go to the JSON-lines file named by
``EVENTBUS_TEST_RECORD`` (one ``write`` per line with O_APPEND, so pool children don't interleave).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from celery import Celery

from eventbus.celery import configure, subscribe
from eventbus.container import build_container, get_container
from eventbus.core.envelope import Metadata
from eventbus.payload import EventPayload

app = Celery("core")
configure(app, build_container())  # the environment as the test set it, not a container built earlier
app.conf.CELERYD_CONSUMER = "eventbus.celery.SQSConsumer"


def record(kind: str, **data: Any) -> None:
    """Append one record for the test to read."""
    line = json.dumps({"kind": kind, **data}, default=str) + "\n"
    fd = os.open(os.environ["EVENTBUS_TEST_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _record_event(kind: str, kwargs: dict[str, Any]) -> None:
    metadata: Metadata = kwargs["metadata"]
    payload = kwargs["payload"]
    record(
        kind,
        event=metadata.event_name,
        entity_id=metadata.entity_id,
        payload=payload if isinstance(payload, dict) else payload.model_dump(),
        payload_type=type(payload).__name__,
        traceparent=metadata.traceparent,
    )


class OrderPlacedPayload(EventPayload):
    """A typed payload: the handler below receives a validated instance."""

    order_id: int
    amount: float = 0.0


class FollowUpPayload(EventPayload):
    """Published by a handler, to check trace propagation."""

    source: str


# The seed's handlers, verbatim apart from recording instead of printing.
@subscribe(bind=True, name="SomeTrickyName")
def test(cls, *args, **kwargs):  # type: ignore[no-untyped-def]
    print(f"TASK EXECUTION =>>>>>>>>>>>>>>>>>> {cls} {args}, {kwargs}")
    _record_event("tricky", kwargs)


@subscribe
def do_good(cls, *args, **kwargs):  # type: ignore[no-untyped-def]
    _record_event("doGood", kwargs)


@subscribe
def do_nice(cls, *args, **kwargs):  # type: ignore[no-untyped-def]
    _record_event("doNice", kwargs)


@subscribe
def order_placed(task: Any, payload: OrderPlacedPayload, metadata: Metadata) -> None:
    """Typed handler: ``payload`` is validated against its annotation."""
    record("orderPlaced", order_id=payload.order_id, payload_type=type(payload).__name__)


@subscribe
def always_fails(task: Any, payload: dict[str, Any], metadata: Metadata) -> None:
    """Fails every time: its message must be redelivered and end in the dead-letter queue."""
    record("alwaysFails", marker=payload.get("marker"), attempt=task.request.id)
    raise RuntimeError("handler failed on purpose")


@subscribe
def leaks_nothing(task: Any, payload: dict[str, Any], metadata: Metadata) -> None:
    """Handles events carrying secrets; a failure must not put them in logs."""
    record("leaksNothing", marker=payload.get("marker"))
    raise ValueError("failing so the failure path is logged too")


@subscribe
def publish_follow_up(task: Any, payload: dict[str, Any], metadata: Metadata) -> None:
    """Publishes an event while handling one: the trace must continue."""
    get_container().event_publisher().publish(FollowUpPayload(source=str(payload["marker"])), entity_id="e-1")


@subscribe
def follow_up(task: Any, payload: FollowUpPayload, metadata: Metadata) -> None:
    """Receives the follow-up event."""
    record("followUp", source=payload.source, traceparent=metadata.traceparent, publisher=metadata.publisher_name)


@subscribe
def sleepy(task: Any, payload: dict[str, Any], metadata: Metadata) -> None:
    """Sleeps ``payload["seconds"]``, recording each start: a second start means SQS handed the event out twice."""
    record("sleepy", marker=payload.get("marker"), pid=os.getpid(), at=time.time())
    time.sleep(float(payload.get("seconds", 1)))
    record("sleepyDone", marker=payload.get("marker"), at=time.time())


@subscribe(autoretry_for=(RuntimeError,), max_retries=1, default_retry_delay=0)
def retries_then_fails(task: Any, payload: dict[str, Any], metadata: Metadata) -> None:
    """Fails, is retried once (a new task message), and fails again for good."""
    record("retriesThenFails", marker=payload.get("marker"), retries=task.request.retries)
    raise RuntimeError("fails every time")


@app.task
def later(marker: str) -> None:
    """A task sent with a countdown: records when it ran."""
    record("later", marker=marker, at=time.time(), pid=os.getpid())


@app.task
def plain(token: str) -> str:
    """An ordinary Celery task on the same queue."""
    record("plain", token=token)
    return token
