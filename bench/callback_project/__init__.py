"""The Django project of ``bench/callback.py``: settings, the ``orders`` app (one model), the Celery app and tasks."""
