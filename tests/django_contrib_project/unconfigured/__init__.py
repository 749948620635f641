"""A project whose Celery app was never given to ``eventbus.celery.configure`` (eventbus.E005)."""

from .celery import app

__all__ = ["app"]
