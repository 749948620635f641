"""The project's Celery app, written as Celery's Django guide does, plus ``configure(app)``."""

import os

from celery import Celery

from eventbus.celery import configure

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django_contrib_project.proj.settings")

app = Celery("proj")
app.config_from_object("django.conf:settings", namespace="CELERY")
configure(app)
app.autodiscover_tasks()
