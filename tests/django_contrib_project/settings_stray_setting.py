"""An eventbus setting written as a top-level Django setting, which nothing reads (eventbus.E001)."""

from tests.django_contrib_project.base import *  # noqa: F403

EVENTBUS_ENDPOINT_URL = "http://localhost:4566"
