"""``celery -A bench.callback_project.celery_app worker -Q <queue>``: the bench's Django service.

Settings come from ``EVENTBUS_*`` (``EVENTBUS_OUTBOX=django`` turns the outbox and its relay thread on) and the
counters from ``BENCH_*`` (:mod:`bench.callback_project.counting`). ``BENCH_DB_REUSE_MAX=0`` puts back Celery's
default of a new database connection per task.
(``EVENTBUS_OUTBOX_FAST_PATH=false`` leaves every event to the relay thread.)
"""

from __future__ import annotations

import os

import django
from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.callback_project.settings")
django.setup()

from bench.callback_project import counting  # noqa: E402
from eventbus.celery import configure  # noqa: E402

app = Celery("bench_callback")
configure(app)
# Celery's Django fix-up closes every database connection before and after each task (``conn.close()``, whatever
# CONN_MAX_AGE says) unless CELERY_DB_REUSE_MAX is set: then only every 2 x that many tasks. Without it each task
# pays a new PostgreSQL connection (measured: ~39 tasks/s for every scenario at N=200), which hides the other costs.
app.conf.CELERY_DB_REUSE_MAX = int(os.environ.get("BENCH_DB_REUSE_MAX", "1000000"))
counting.install()

import bench.callback_project.tasks  # noqa: E402,F401
