"""The outbox relay inside a Celery worker: a thread of the main process sends what transactions left behind.

:func:`eventbus.celery.configure` adds :class:`OutboxRelayStep` to the worker when ``EVENTBUS_OUTBOX`` is set. Tasks
relay their own events right after their commit (the fast path); this loop sends whatever that could not (the
transport was down, the process died after the commit), retrying with backoff until it can. The relay is built when
the worker starts, so a claim lease a relay pass could outlast stops the worker there with a ``ConfigurationError``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import bootsteps

logger = logging.getLogger("eventbus.outbox")


class OutboxRelayStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Starts the relay loop after the pool (so no pool process inherits its connections) and stops it first."""

    requires = ("celery.worker.components:Pool",)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, worker: Any) -> None:
        """Start relaying in a daemon thread."""
        from eventbus.container import get_container

        container = get_container()
        relay, interval = container.outbox_relay(), container.settings().outbox_relay_interval
        self._stop.clear()

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    relay.run(self._stop, interval)
                except Exception:  # a bug, not an outage (run() absorbs those): log it and keep relaying
                    logger.exception("eventbus: outbox relay loop failed; restarting it")
                    self._stop.wait(relay.max_backoff)

        self._thread = threading.Thread(target=loop, name="eventbus-outbox-relay", daemon=True)
        self._thread.start()
        logger.info("eventbus: outbox relay started (every %.1fs while idle)", interval)

    def stop(self, worker: Any) -> None:
        """Stop relaying (rows not sent yet stay in the outbox for the next worker)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def shutdown(self, worker: Any) -> None:
        """Same as :meth:`stop`."""
        self.stop(worker)
