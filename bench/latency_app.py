"""The Celery app the latency benchmark runs: ``configure()``'s defaults and one ``@subscribe`` handler.

The handler (event ``latencyEvent``) computes ``time.time() - payload["sent"]`` first thing and RPUSHes a JSON record
(event number, latency, handler start time, the warm-up flag) to the Redis list ``LATENCY_LIST``.

``LATENCY_TRACE`` names a file: the worker's main process then asks SQS for ``SentTimestamp`` and
``ApproximateFirstReceiveTimestamp``, notes when each receive's answer reached the channel and when Celery's
strategy took each message (``task_received``, just before the hand-off to the pool), and writes them to that file
at shutdown (kept in memory until then: no I/O on the path it measures); the pool processes note in the handler's
record when they took the job from the pipe (the pool's entry point, wrapped) and Celery's ``task_prerun`` (before
eventbus's runner). ``LATENCY_PREFETCH`` sets
``worker_prefetch_multiplier`` and ``LATENCY_RECEIVE_AT_ONCE=1`` puts back kombu's scheduling of the next receive
(experiments; unset: ``configure()``'s defaults).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis
from celery import Celery
from celery.signals import task_prerun, task_received, worker_shutdown

from eventbus.celery import configure, subscribe

app = Celery("latency")
configure(app)
if "LATENCY_PREFETCH" in os.environ:
    app.conf.worker_prefetch_multiplier = int(os.environ["LATENCY_PREFETCH"])

_redis = redis.Redis.from_url(os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0"))
_list = os.environ.get("LATENCY_LIST", "latency")

#: SQS message id -> stage times (seconds since the epoch), filled in the worker's main process when tracing.
STAGES: dict[str, dict[str, float]] = {}
#: Receives answered: (time the answer reached the channel, messages in it).
RECEIVES: list[tuple[float, int]] = []
#: Receives issued: when ``_schedule_queue`` began and ended (building, signing and queueing the next ReceiveMessage).
SCHEDULES: list[tuple[float, float]] = []
#: When the event loop called the pool's write scheduler (jobs go from the outbound buffer into the pipes).
WRITES: list[float] = []
#: In a pool process, when tracing, for the task being run: when the pool process took it from the pipe (``picked``)
#: and when Celery's ``task_prerun`` came (``prerun``: before eventbus's runner).
PRERUN: dict[str, float] = {}


def _trace() -> None:
    """Note the stages of every message in the main process: the receive's answer, and Celery's strategy."""
    from eventbus.celery.transport.channel import Channel

    app.conf.broker_transport_options["fetch_message_attributes"] = {
        "MessageSystemAttributeNames": ["ApproximateReceiveCount", "SentTimestamp", "ApproximateFirstReceiveTimestamp"]
    }
    on_received = Channel._on_received

    def traced_on_received(self: Any, queue: str, q_url: str, callback: Any, response: Any) -> None:
        now = time.time()
        messages = (response.get("Messages") or []) if isinstance(response, dict) else []
        RECEIVES.append((now, len(messages)))
        for message in messages:
            attributes = message.get("Attributes") or {}
            STAGES[str(message.get("MessageId"))] = {
                "sqs_sent": int(attributes.get("SentTimestamp", 0)) / 1000,
                "sqs_first_receive": int(attributes.get("ApproximateFirstReceiveTimestamp", 0)) / 1000,
                "answer": now,
            }
        on_received(self, queue, q_url, callback, response)

    Channel._on_received = traced_on_received  # type: ignore[method-assign]
    schedule_queue = Channel._schedule_queue

    def traced_schedule_queue(self: Any, queue: str) -> None:
        start = time.time()
        schedule_queue(self, queue)
        SCHEDULES.append((start, time.time()))

    Channel._schedule_queue = traced_schedule_queue  # type: ignore[method-assign]

    # when the event loop calls the pool's write scheduler (the poll found idle pool inqueues writable)
    from celery.concurrency.asynpool import AsynPool

    create_write_handlers = AsynPool._create_write_handlers

    def traced_create_write_handlers(self: Any, hub: Any, *args: Any, **kwargs: Any) -> Any:
        result = create_write_handlers(self, hub, *args, **kwargs)
        schedule_writes = hub.consolidate_callback

        def traced_schedule_writes(*a: Any, **k: Any) -> Any:
            WRITES.append(time.time())
            return schedule_writes(*a, **k)

        hub.consolidate_callback = traced_schedule_writes
        return result

    AsynPool._create_write_handlers = traced_create_write_handlers

    def _received(request: Any = None, **_: Any) -> None:
        stages = STAGES.get(str(getattr(request, "id", "")))
        if stages is not None:
            stages["strategy"] = time.time()

    def _write(**_: Any) -> None:
        with open(os.environ["LATENCY_TRACE"], "w") as out:
            json.dump({"stages": STAGES, "receives": RECEIVES, "schedules": SCHEDULES, "writes": WRITES}, out)

    def _prerun(task_id: str = "", **_: Any) -> None:
        PRERUN["prerun"] = time.time()

    # the pool's entry point, as a pool process runs it: when the job came out of the pipe (before Celery's tracer)
    import celery.app.trace as celery_trace
    import celery.worker.request as celery_request

    for name in ("fast_trace_task", "trace_task_ret"):
        original = getattr(celery_trace, name)

        def entry(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            PRERUN.clear()
            PRERUN["picked"] = time.time()
            return _original(*args, **kwargs)

        # pickled by name on its way to the pool process: it must be found under the original's name
        entry.__module__, entry.__qualname__, entry.__name__ = original.__module__, original.__qualname__, name
        setattr(celery_trace, name, entry)
        setattr(celery_request, name, entry)

    task_received.connect(_received, weak=False)
    task_prerun.connect(_prerun, weak=False)
    worker_shutdown.connect(_write, weak=False)


if os.environ.get("LATENCY_TRACE"):
    _trace()


def _receive_at_once() -> None:
    """The experiment ``LATENCY_RECEIVE_AT_ONCE``: kombu's own scheduling, where the receive after one that brought
    messages is issued on the next loop iteration (``call_soon``), before the poll that hands those messages to the
    pool processes (eventbus's transport issues it just after that poll: ``RECEIVE_AFTER_HANDOFF``)."""
    from kombu.transport.SQS import Channel as KombuChannel

    from eventbus.celery.transport.channel import Channel

    Channel._loop1 = KombuChannel._loop1  # type: ignore[method-assign]


if os.environ.get("LATENCY_RECEIVE_AT_ONCE"):
    _receive_at_once()


@subscribe(event="latencyEvent")
def latency_event(task: Any, payload: dict[str, Any], metadata: Any) -> None:
    """Publish-to-handler latency of this event, to the Redis list."""
    now = time.time()
    record = {
        "i": payload["i"],
        "latency": now - payload["sent"],
        "handled": now,
        "id": str(task.request.id),
        "warm": bool(payload.get("warm")),
    }
    record.update(PRERUN)
    _redis.rpush(_list, json.dumps(record))
