"""Worker health: a file the consumer's event loop touches while the worker consumes and SQS answers.

With ``EVENTBUS_HEALTH_FILE`` set, :func:`eventbus.celery.configure` adds :class:`HealthFileStep` to the worker's
consumer. Every ``EVENTBUS_HEALTH_INTERVAL`` seconds a timer of the consumer's event loop (kombu's hub) looks at the
transport channel's receive state and writes the file, whose modification time is what ``eventbus health``
(:mod:`eventbus.cli_health`) judges:

=====================================================  ========================================================
the worker                                             the file
=====================================================  ========================================================
starting: checks running, no receive answered yet      absent (a stale one from a former run is removed)
consuming: the last receive of every queue succeeded   rewritten each tick, state ``consuming``: fresh
SQS unreachable (a queue's receives keep failing)      rewritten once, state ``unreachable`` and since when, its
                                                       modification time left at the last healthy tick: it
                                                       goes stale
event loop stuck (a blocking call in the main          not touched: it goes stale
process)
consumer stopped (warm shutdown, connection lost)      removed
process killed or crashed                              left behind, not touched: it goes stale
=====================================================  ========================================================

The file is one JSON object on one line (``pid``, ``queue``, ``state``, ``interval``, ``last_received``,
``unreachable_since``, times as ISO 8601 UTC), replaced atomically (written beside it, then renamed), so a probe never
reads half of one. It is written by the main process only; give each worker its own path.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from celery import bootsteps

__all__ = ["CONSUMING", "UNREACHABLE", "HealthFile", "HealthFileStep", "iso"]

logger = logging.getLogger("eventbus.health")

#: The state of a worker whose receives succeed.
CONSUMING: Final = "consuming"
#: The state of a worker that cannot reach SQS (the file is stale from then on).
UNREACHABLE: Final = "unreachable"


def iso(timestamp: float | None) -> str | None:
    """``timestamp`` (seconds since the epoch) as ISO 8601 UTC to the second; ``None`` stays ``None``."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class HealthFile:
    """The health file of one worker: what each tick writes, given the channel's receive state (no Celery here)."""

    def __init__(self, path: str | os.PathLike[str], queue: str, interval: float, pid: int | None = None) -> None:
        self.path = Path(path)
        self.queue = queue
        self.interval = interval
        self.pid = os.getpid() if pid is None else pid
        #: When the file was last written as healthy (``None``: never, so it is not written in an outage either).
        self.touched_at: float | None = None
        self._outage_written: float | None = None
        self._failing = False

    def beat(self, last_received_at: float | None, unreachable: Mapping[str, float], now: float) -> None:
        """One tick: touch the file if SQS answered and answers; mark it unreachable (left stale) in an outage.

        Nothing is written before the first receive SQS answered (readiness), nor in an outage that began before it.
        """
        if last_received_at is None:
            return
        if unreachable:
            since = min(unreachable.values())
            if self.touched_at is not None and self._outage_written != since:
                record = self._record(UNREACHABLE, last_received_at, since)
                # the time of the last healthy tick stays the file's age: a probe sees it grow during the outage
                if self._write(record, self.touched_at):
                    self._outage_written = since
            return
        if self._write(self._record(CONSUMING, last_received_at, None), now):
            self.touched_at, self._outage_written = now, None

    def remove(self) -> None:
        """Remove the file (the consumer stopped, or a new one starts): a probe then reports "no health file"."""
        self.touched_at, self._outage_written = None, None
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            logger.warning("eventbus: cannot remove health file %s (%s)", self.path, exc)

    def _record(self, state: str, last_received_at: float, since: float | None) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "queue": self.queue,
            "state": state,
            "interval": self.interval,
            "last_received": iso(last_received_at),
            "unreachable_since": iso(since),
        }

    def _write(self, record: Mapping[str, Any], mtime: float) -> bool:
        """Replace the file with ``record``, modified at ``mtime``; False (logged once per failing spell) on error."""
        temporary = self.path.with_name(f".{self.path.name}.{self.pid}.tmp")
        try:
            temporary.write_text(json.dumps(record, separators=(",", ":")) + "\n")
            os.utime(temporary, (mtime, mtime))
            os.replace(temporary, self.path)
        except OSError as exc:
            if not self._failing:
                logger.warning(
                    "eventbus: cannot write health file %s (%s): probes will report the worker unhealthy; check that "
                    "its directory exists and the worker may write there",
                    self.path,
                    exc,
                )
            self._failing = True
            temporary.unlink(missing_ok=True)
            return False
        if self._failing:
            logger.info("eventbus: health file %s written again", self.path)
        self._failing = False
        return True


class HealthFileStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """A consumer step: ticks :class:`HealthFile` on the consumer's event loop while the consumer runs.

    Started after the task consumer (so after the worker's start-up checks passed), stopped, with the file removed,
    when the consumer stops: warm shutdown, or a lost connection before the consumer restarts.
    """

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.health: HealthFile | None = None
        self._timer: Any = None
        self._channel: Any = None

    def start(self, c: Any) -> None:
        """Remove a file left by a former run, then tick every ``EVENTBUS_HEALTH_INTERVAL`` seconds on the loop."""
        from eventbus.celery.transport import Channel
        from eventbus.container import get_container

        settings = get_container().settings()
        if not settings.health_file:
            return
        if self.health is None:
            self.health = HealthFile(settings.health_file, settings.queue_name, settings.health_interval)
        self.health.remove()
        channel = getattr(c.task_consumer, "channel", None)
        if not isinstance(channel, Channel) or c.hub is None:
            why = "has no event loop (a gevent or eventlet pool)" if c.hub is None else "uses another transport"
            logger.warning("eventbus: EVENTBUS_HEALTH_FILE is set but this worker %s: no health file is written", why)
            return
        self._channel = channel
        self._timer = c.hub.call_repeatedly(settings.health_interval, self._tick)
        logger.info(
            "eventbus: health file %s touched every %.1fs while consuming", self.health.path, settings.health_interval
        )

    def _tick(self) -> None:
        if self.health is not None and self._channel is not None:
            self.health.beat(self._channel.last_received_at, self._channel.unreachable, time.time())

    def stop(self, c: Any) -> None:
        """Stop ticking and remove the file: the consumer no longer consumes."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._channel = None
        if self.health is not None:
            self.health.remove()

    def shutdown(self, c: Any) -> None:
        """Same as :meth:`stop`."""
        self.stop(c)
