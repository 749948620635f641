"""A prefork pool whose hand-off fails for marked jobs, as pickling a too-deep job once did (issue 9, item 1).

``celery -A ... worker -P custom`` with ``CELERY_CUSTOM_WORKER_POOL=tests.integration.failing_pool:TaskPool``: a
job whose arguments contain :data:`EXPLODE` raises ``RecursionError`` where the real pool serializes it for a pool
process, after Celery reserved the request, took a slot of the worker's semaphore and created the pool job.
"""

from __future__ import annotations

from typing import Any

from celery.concurrency import prefork

#: Jobs whose arguments contain this text fail at the hand-off.
EXPLODE = "explode-on-handoff"


class TaskPool(prefork.TaskPool):  # type: ignore[misc]
    """Celery's prefork pool with a hand-off that fails for marked jobs."""

    def register_with_event_loop(self, loop: Any) -> Any:
        result = super().register_with_event_loop(loop)
        pool = self._pool
        send_job = pool._quick_put

        def failing_send_job(job: Any) -> Any:
            if EXPLODE in str(job[1][3]):
                raise RecursionError("maximum recursion depth exceeded while pickling an object")
            return send_job(job)

        pool._quick_put = failing_send_job
        return result
