"""Celery's Django guide, without ``configure(app)``."""

from celery import Celery

app = Celery("unconfigured")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
