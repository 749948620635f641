"""The worker app for the Django callback-task tests: ``celery -A tests.django_project.celery_app worker``."""

import os

import django
from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django_project.settings")
django.setup()

from eventbus.celery import configure  # noqa: E402
from eventbus.container import build_container  # noqa: E402

app = Celery("core")
configure(app, build_container())  # the environment as the test set it, not a container built earlier

import tests.django_project.entities.tasks  # noqa: E402,F401  (registers the shared tasks)
