"""OUTBOX = django without the app holding the outbox table (eventbus.E002)."""

from tests.django_contrib_project.base import *  # noqa: F403

INSTALLED_APPS = ["eventbus.contrib.django", "tests.django_contrib_project.shop"]
