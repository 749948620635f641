"""The project package: imports the Celery app, as Celery's Django guide says, so it is the current app."""

from .celery import app

__all__ = ["app"]
