"""Celery task events captured for the secrets test: the dispatcher builds every event as usual and writes it to
the JSON-lines file ``EVENTBUS_TEST_EVENTS`` instead of publishing it (SQS has no fanout exchange for events)."""

from __future__ import annotations

import json
import os
from typing import Any

from celery.app.events import Events
from celery.events.dispatcher import EventDispatcher


class RecordingDispatcher(EventDispatcher):  # type: ignore[misc]
    """Writes each event (or buffered batch) to a file."""

    def _publish(self, event: Any, producer: Any, routing_key: str, **kwargs: Any) -> None:
        batch = event if isinstance(event, list) else [event]
        lines = "".join(json.dumps(dict(item), default=str) + "\n" for item in batch)
        fd = os.open(os.environ["EVENTBUS_TEST_EVENTS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, lines.encode())
        finally:
            os.close(fd)


class RecordingEvents(Events):  # type: ignore[misc]
    """The app's events with :class:`RecordingDispatcher`."""

    dispatcher_cls = "tests.integration.capture:RecordingDispatcher"
