"""Settings of the callback bench's Django project: PostgreSQL, the ``orders`` app and eventbus's tables.

The database is ``BENCH_CALLBACK_DB`` (default ``eventbus_bench_callback``) on ``BENCH_PGHOST`` (127.0.0.1), user
``BENCH_PGUSER`` (postgres, trust auth). Connections are persistent (``CONN_MAX_AGE = None``, and
``CELERY_DB_REUSE_MAX`` in :mod:`bench.callback_project.celery_app`): otherwise each task opens a new connection.
"""

from __future__ import annotations

import os
from typing import Any

SECRET_KEY = "bench-only"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["bench.callback_project.orders", "eventbus.adapters.django_orm"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES: dict[str, dict[str, Any]] = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("BENCH_CALLBACK_DB", "eventbus_bench_callback"),
        "USER": os.environ.get("BENCH_PGUSER", "postgres"),
        "HOST": os.environ.get("BENCH_PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("BENCH_PGPORT", "5432"),
        "CONN_MAX_AGE": None,
    }
}
