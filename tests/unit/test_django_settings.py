"""The Django ``EVENTBUS`` settings source, in subprocesses (Django settings are process-global; this process's other
tests use ``tests.django_project.settings``): a dict value is used, an ``EVENTBUS_*`` variable beats it, an invalid
value is named as written and never echoed, and ``configure(app)`` in the project's ``celery.py`` reads the dict."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "tests.django_contrib_project"


def run(code: str, settings: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with ``DJANGO_SETTINGS_MODULE`` set and no ``EVENTBUS_*`` variable but ``env``."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("EVENTBUS_")}
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    clean.update(env, DJANGO_SETTINGS_MODULE=f"{PROJECT}.{settings}", PYTHONPATH=pythonpath)
    return subprocess.run(
        [sys.executable, "-c", code], env=clean, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


#: a Django process (manage.py, a WSGI server) has set Django up before eventbus reads its settings
SETUP = "import django; django.setup()\n"
LOAD = (
    SETUP + "from eventbus.settings import EventBusSettings; s = EventBusSettings.load(); print(s.queue_name, s.outbox)"
)


def test_a_value_of_the_django_dict_is_used() -> None:
    result = run(LOAD, "settings_without_celery")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["contrib-test-queue", "django"]


def test_an_environment_variable_beats_the_django_dict() -> None:
    result = run(LOAD, "settings_without_celery", EVENTBUS_QUEUE_NAME="from-environment")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["from-environment", "django"]


def test_an_invalid_value_is_named_as_written_and_not_echoed() -> None:
    code = SETUP + (
        "from eventbus.errors import ConfigurationError\n"
        "from eventbus.settings import EventBusSettings\n"
        "try:\n    EventBusSettings.load()\n"
        "except ConfigurationError as exc:\n    print(exc)\n"
    )
    result = run(code, "settings_invalid_value")
    assert result.returncode == 0, result.stderr
    assert 'EVENTBUS["WAIT_TIME_SECONDS"]' in result.stdout
    assert "abc" not in result.stdout


def test_configure_in_the_projects_celery_module_reads_the_django_dict() -> None:
    # proj/__init__.py imports the app while Django imports the settings module (manage.py) or before anything read
    # the settings (celery -A proj worker): configure(app) must still see EVENTBUS
    code = f"from {PROJECT}.proj import app; print(app.conf.task_default_queue)"
    result = run(code, "proj.settings")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["contrib-test-queue"]
