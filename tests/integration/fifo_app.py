"""The Celery app of ``tests/integration/test_fifo.py``: a handler that sleeps a little and records when each event
of each message group started and ended (pid included), failing once on the events the test marks."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from celery import Celery

from eventbus.celery import configure, subscribe
from eventbus.container import build_container
from eventbus.core.envelope import Metadata
from eventbus.payload import EventPayload
from tests.integration.worker_app import record

app = Celery("fifo")
configure(app, build_container())
app.conf.CELERYD_CONSUMER = "eventbus.celery.SQSConsumer"


class FifoStepPayload(EventPayload):
    """One step of one entity's history: must be handled after the step before it."""

    group: str
    seq: int
    sleep_ms: int = 0
    fail_once: bool = False


@subscribe
def fifo_step(task: Any, payload: FifoStepPayload, metadata: Metadata) -> None:
    started = time.time()
    if payload.fail_once:
        marker = Path(os.environ["EVENTBUS_TEST_RECORD"]).with_name(f"failed-{payload.group}-{payload.seq}")
        if not marker.exists():
            marker.touch()
            record("failed", group=payload.group, seq=payload.seq, at=started)
            raise RuntimeError("failing once, as the test asked")
    time.sleep(payload.sleep_ms / 1000)
    record("step", group=payload.group, seq=payload.seq, start=started, end=time.time(), pid=os.getpid())
