"""eventbus's pytest plugin, registered through the ``pytest11`` entry point (see docs/testing.md).

Name the service's Celery app once, in the pytest configuration::

    [tool.pytest.ini_options]
    eventbus_app = "myproject.celery:app"

and a test takes the ``event_bus`` fixture (a :class:`~eventbus.testing.TestEventBus` per test). Override
``eventbus_settings`` (a dict of settings for the bus) or ``eventbus_app`` itself in a conftest. The opt-in live
fixtures, ``eventbus_emulator`` and ``eventbus_worker``, run the embedded SNS/SQS emulator and a real worker.

Loading this plugin imports nothing heavy (no Celery, Django or boto3) and defines no autouse fixture: a test run
that uses none of these fixtures is not affected.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from celery import Celery

    from eventbus.testing.bus import TestEventBus
    from eventbus.testing.live import LiveEmulator, LiveWorker

__all__ = [
    "event_bus",
    "eventbus_app",
    "eventbus_app_spec",
    "eventbus_emulator",
    "eventbus_settings",
    "eventbus_worker",
    "eventbus_worker_env",
    "pytest_addoption",
]

_INI = "eventbus_app"
_MISSING_APP = (
    "the eventbus pytest plugin does not know your Celery app: set it in your pytest configuration, "
    'e.g. `eventbus_app = "myproject.celery:app"` under [tool.pytest.ini_options] in pyproject.toml (or '
    "`eventbus_app = myproject.celery:app` under [pytest] in pytest.ini), or override the `eventbus_app` fixture "
    "in a conftest.py"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Declare the ``eventbus_app`` ini option."""
    parser.addini(
        _INI,
        help="the Celery app eventbus's fixtures test, as `module:attribute` or `module` (as for `celery -A`)",
        default="",
    )


@pytest.fixture(scope="session")
def eventbus_app_spec(pytestconfig: pytest.Config) -> str:
    """The ``eventbus_app`` ini option (fails the test, saying what to set, when it is missing)."""
    spec = str(pytestconfig.getini(_INI) or "").strip()
    if not spec:
        pytest.fail(_MISSING_APP, pytrace=False)
    return spec


@pytest.fixture(scope="session")
def eventbus_app(eventbus_app_spec: str) -> Celery:
    """The service's Celery app, loaded as ``celery -A`` would load it (its ``@subscribe`` tasks registered)."""
    from eventbus.celery.topology import load_app

    return load_app(eventbus_app_spec)


@pytest.fixture
def eventbus_settings() -> dict[str, Any]:
    """Settings for the ``event_bus`` fixture's bus (override it: ``return {"service": "orders"}``)."""
    return {}


@pytest.fixture
def event_bus(eventbus_app: Celery, eventbus_settings: dict[str, Any]) -> Iterator[TestEventBus]:
    """A :class:`~eventbus.testing.TestEventBus` for one test: a fresh container, eager tasks, in-memory events."""
    from eventbus.testing.bus import TestEventBus

    with TestEventBus(eventbus_app, settings=eventbus_settings) as bus:
        yield bus


@pytest.fixture(scope="session")
def eventbus_emulator() -> Iterator[LiveEmulator]:
    """Opt-in: the embedded SNS/SQS emulator, one per test session (needs ``eventbus[emulator]``)."""
    from eventbus.testing.live import LiveEmulator

    with LiveEmulator() as emulator:
        yield emulator


@pytest.fixture
def eventbus_worker_env() -> dict[str, str]:
    """Extra environment for the ``eventbus_worker`` fixture's worker (override it)."""
    return {}


@pytest.fixture
def eventbus_worker(
    eventbus_app_spec: str, eventbus_emulator: LiveEmulator, eventbus_worker_env: dict[str, str]
) -> Iterator[LiveWorker]:
    """Opt-in: a real Celery worker of the ``eventbus_app`` app consuming from the emulator, one per test."""
    from eventbus.testing.live import LiveWorker

    with LiveWorker(eventbus_app_spec, eventbus_emulator, env=eventbus_worker_env) as worker:
        yield worker
