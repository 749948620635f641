"""The settings every variant starts from: no Celery app is imported from here."""

import os
import tempfile

#: Each pytest-xdist test process (and the workers it starts) its own default SQLite file.
_XDIST = os.environ.get("PYTEST_XDIST_WORKER", "")

SECRET_KEY = "tests-only"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["eventbus.contrib.django", "eventbus.adapters.django_orm", "tests.django_contrib_project.shop"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(tempfile.gettempdir(), f"eventbus-contrib-tests{_XDIST}.sqlite3"),
    }
}
EVENTBUS = {
    "SERVICE": "contrib",
    "ENVIRONMENT": "test",
    "QUEUE_NAME": "contrib-test-queue",
    "OUTBOX": "django",
    "WAIT_TIME_SECONDS": 2,
}
