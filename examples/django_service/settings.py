"""Settings of the Django example service (SQLite file from ``EXAMPLE_SQLITE``)."""

import os

SECRET_KEY = "example-only"
USE_TZ = True
INSTALLED_APPS = ["examples.django_service.shop"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ.get("EXAMPLE_SQLITE", ":memory:")}}
