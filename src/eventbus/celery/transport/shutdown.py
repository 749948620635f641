"""Shutdown: draining, releasing what no task runs, and the last flush before the channel closes.

Warm shutdown sets ``draining`` (the consumer does): sends switch to synchronous calls, the event loop no longer
polling sockets. When the channel closes, every message still held and not running is released (visibility 0), so
another worker takes it at once, and the buffers are flushed. kombu's own "restore" of unacknowledged messages (which
re-sends copies on SQS) is turned off.
"""

from __future__ import annotations

from collections.abc import Callable

from eventbus.celery.transport.base import ChannelBase
from eventbus.celery.transport.logs import logger


class ShutdownMixin(ChannelBase):
    """Releasing held messages and closing the channel."""

    def _init_shutdown(self) -> None:
        self.in_progress = None
        #: Warm shutdown has begun: send synchronously, the event loop no longer polls sockets.
        self.draining = False
        # Unacknowledged messages are released (visibility 0) by close(); kombu would re-send copies instead.
        self.qos.restore_at_shutdown = False

    def release_held(self, keep: Callable[[str], bool] | None = None) -> int:
        """Release every held message except those ``keep`` names; return how many."""
        return sum(self.release(tag) for tag in self.held() if keep is None or not keep(tag))

    def close(self) -> None:
        """Release held messages that are not running, flush buffered acknowledgements, then close."""
        for timer in (self._flush_timer, self._heartbeat_timer):
            if timer is not None:
                timer.cancel()
        self._flush_timer = self._heartbeat_timer = None
        self.draining = True
        try:
            released = self.release_held(self.in_progress)
            if released:
                logger.info("eventbus: released %d unstarted message(s) for other workers at channel close", released)
            self.flush()
        finally:
            super().close()
