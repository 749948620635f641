"""A minimal Django project for the callback-task tests (SQLite by default, PostgreSQL as alias ``postgres``)."""

import os
import tempfile

#: Each pytest-xdist test process (and the workers it starts) its own default SQLite file.
_XDIST = os.environ.get("PYTEST_XDIST_WORKER", "")

SECRET_KEY = "tests-only"
USE_TZ = True
INSTALLED_APPS = ["eventbus.adapters.django_orm", "tests.django_project.entities"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get(
            "EVENTBUS_TEST_SQLITE", os.path.join(tempfile.gettempdir(), f"eventbus-tests{_XDIST}.sqlite3")
        ),
    },
    "postgres": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "test",
        "USER": os.environ.get("EVENTBUS_TEST_PGUSER", "postgres"),
        "HOST": "127.0.0.1",
        "PORT": "5432",
    },
}
