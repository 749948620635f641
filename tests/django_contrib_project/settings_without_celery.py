"""The base settings in a project that imports no Celery app (eventbus.W002)."""

from tests.django_contrib_project.base import *  # noqa: F403
