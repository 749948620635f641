"""Celery queues other than eventbus's QUEUE_NAME (eventbus.W001)."""

from kombu import Queue

from tests.django_contrib_project.base import *  # noqa: F403

CELERY_TASK_QUEUES = [Queue("legacy-orders")]
