"""A Django 5 + Celery project for the tests of ``eventbus.contrib.django`` (tests/integration/test_django_contrib.py).

``base`` holds the settings and imports no Celery app; ``proj`` is the project as Celery's Django guide lays it out
(``proj/__init__.py`` imports ``from .celery import app``, which calls ``eventbus.celery.configure(app)``), with one
settings module per misconfiguration; ``unconfigured`` is a project whose app lacks ``configure(app)``; the
``settings_*`` modules here run without any Celery app.
"""
