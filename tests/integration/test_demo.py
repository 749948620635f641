"""The README's demo command keeps working: every outcome it promises is seen, and nothing is left running."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "eventbus.cli", "demo", "--port", "0"],
        ["-m", "examples.sqlalchemy_service"],
        ["-m", "examples.django_service"],
    ],
    ids=["eventbus-demo", "sqlalchemy-example", "django-example"],
)
def test_demo_runs_to_completion_and_cleans_up(command: list[str]) -> None:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTBUS_")}
    done = subprocess.run(
        [sys.executable, *command], cwd=root, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "MISSING" not in done.stdout
    assert "callback" in done.stdout
    leftovers = subprocess.run(["pgrep", "-f", "celery -A (eventbus.demo|examples)"], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", "the demo left a worker behind"
