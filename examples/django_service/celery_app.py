"""``celery -A examples.django_service.celery_app worker -Q queue_name``."""

import os

import django
from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_service.settings")
django.setup()

from eventbus.celery import configure  # noqa: E402

app = Celery("shop")
configure(app)

import examples.django_service.shop.tasks  # noqa: E402,F401
