"""PostgreSQL (database ``test``) in the schema ``CONTRIB_PG_SCHEMA``, so the test's outbox is its own."""

import os

from tests.django_contrib_project.base import *  # noqa: F403

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "test",
        "USER": os.environ.get("EVENTBUS_TEST_PGUSER", "postgres"),
        "HOST": "127.0.0.1",
        "PORT": "5432",
        "OPTIONS": {"options": f"-c search_path={os.environ.get('CONTRIB_PG_SCHEMA', 'public')}"},
    }
}
