"""The test kit as a service's suite uses it: the pytest plugin in a pytest run of its own (``pytester``), and a
Django callback task run through ``TestEventBus`` inside a transaction that never commits (PostgreSQL)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from eventbus.payload import EventPayload
from eventbus.testing import TestEventBus

pytestmark = pytest.mark.integration
pytest_plugins = ["pytester"]

# ---------------------------------------------------------------- the plugin, in a pytest run of its own

APP_MODULE = """
from celery import Celery

from eventbus.celery import subscribe
from eventbus.container import get_container
from eventbus.payload import EventPayload

app = Celery("tkit-plugin-app")


class TkitPAnnouncedPayload(EventPayload):
    which: str


@subscribe(event="tkitPAnnounce")
def announce(task, payload, metadata):
    get_container().event_publisher().publish(TkitPAnnouncedPayload(which=payload["which"]))
"""

TESTS = """
from test_support import announce_and_check


def test_first(event_bus):
    announce_and_check(event_bus, "first")


def test_second(event_bus):
    announce_and_check(event_bus, "second")
"""

SUPPORT = """
from tkit_app import TkitPAnnouncedPayload


def announce_and_check(bus, which):
    assert bus.container.settings().service == "tkit-plugin"
    bus.container.event_publisher().publish(TkitPAnnouncedPayload(which=which))
    assert bus.deliver({"metadata": {"eventName": "tkitPAnnounce"}, "payload": {"which": which}}).fate == "handled"
    assert [e.payload["which"] for e in bus.published] == [which, which]
"""

CONFTEST = """
import pytest


@pytest.fixture
def eventbus_settings():
    return {"service": "tkit-plugin"}
"""


@pytest.fixture(autouse=True)
def _no_django_settings_module(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """The generated service has no Django: not the settings module other tests of this run may have exported."""
    if "pytester" in request.fixturenames:
        monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)


def service_project(pytester: pytest.Pytester, *, ini: bool = True) -> None:
    pytester.makepyfile(tkit_app=APP_MODULE, test_support=SUPPORT, test_order=TESTS)
    pytester.makeconftest(CONFTEST)
    if ini:
        pytester.makeini("[pytest]\neventbus_app = tkit_app:app\n")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # the plugin loads through its entry point; pytest-django stays out of a suite that has no Django
    return pytester.runpytest_subprocess("-p", "no:django", "-p", "no:cacheprovider", "-v", *args)


def test_two_tests_never_see_each_others_events_in_either_order(pytester: pytest.Pytester) -> None:
    service_project(pytester)

    forward = run(pytester)
    forward.assert_outcomes(passed=2)
    forward.stdout.fnmatch_lines(["*test_first PASSED*", "*test_second PASSED*"])

    backward = run(pytester, "test_order.py::test_second", "test_order.py::test_first")  # pytest keeps this order
    backward.assert_outcomes(passed=2)
    backward.stdout.fnmatch_lines(["*test_second PASSED*", "*test_first PASSED*"])


def test_without_the_ini_option_the_fixture_says_what_to_set(pytester: pytest.Pytester) -> None:
    service_project(pytester, ini=False)

    result = run(pytester, "test_order.py::test_first")

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_first*",
            "the eventbus pytest plugin does not know your Celery app: set it in your pytest configuration, e.g. "
            '`eventbus_app = "myproject.celery:app"` under [[]tool.pytest.ini_options[]]*or override the '
            "`eventbus_app` fixture in a conftest.py",
        ]
    )


# ---------------------------------------------------------------- a Django callback task, PostgreSQL

#: Shared tasks attach to every Celery app: this one only runs the test project's callback tasks through the kit.
app = Celery("eventbus-testkit-django", set_as_current=False)
SETTINGS = {"service": "tkit", "django_database": "postgres"}


@pytest.fixture(scope="module")
def django_postgres(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Django set up in this process with the test project (as tests/contract/conftest.py does), migrated on
    PostgreSQL; yields the entities' tasks module."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django_project.settings")
    os.environ.setdefault("EVENTBUS_TEST_SQLITE", str(Path(tmp_path_factory.mktemp("django")) / "kit.sqlite3"))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", database="postgres", verbosity=0)
    from tests.django_project.entities import tasks

    return tasks


def new_entity(**fields: Any) -> Any:
    from tests.django_project.entities.models import Entity

    return Entity.objects.using("postgres").create(**fields)


@pytest.fixture
def test_transaction(django_postgres: Any) -> Iterator[None]:
    """A transaction rolled back at the end, as pytest-django's ``db`` fixture and Django's ``TestCase`` hold."""
    from django.db import transaction

    with transaction.atomic(using="postgres"):
        yield
        transaction.set_rollback(True, using="postgres")


def test_a_callback_task_publishes_its_success_event_although_the_test_transaction_never_commits(
    django_postgres: Any, test_transaction: None
) -> None:
    tasks = django_postgres
    entity = new_entity(name="kit")
    with TestEventBus(app, settings=SETTINGS) as bus:
        bus.run_task(tasks.do_entity_action, entity_id=str(entity.id))

        assert bus.published.payloads("actionHappened") == [{"id": str(entity.id)}]
        (event,) = bus.published
        assert event.metadata.entity_id == str(entity.id)
        assert event.metadata.publisher_name == "tkit"


def test_a_delay_of_a_callback_task_in_the_code_under_test_publishes_once_its_transaction_ends(
    django_postgres: Any, test_transaction: None
) -> None:
    tasks = django_postgres
    first, second = new_entity(name="one"), new_entity(name="two")
    with TestEventBus(app, settings=SETTINGS) as bus:
        tasks.do_entity_action.delay(str(first.id))  # eager inside the bus: runs here, released at its end
        assert bus.published.payloads("actionHappened") == [{"id": str(first.id)}]
        tasks.do_entity_action.delay(str(second.id))

        assert bus.published.payloads("actionHappened") == [{"id": str(first.id)}, {"id": str(second.id)}]


def test_a_failing_callback_task_publishes_its_failure_event_and_never_its_success_event(
    django_postgres: Any, test_transaction: None
) -> None:
    from tests.django_project.entities.models import ActionRefused, Entity

    tasks = django_postgres
    entity = new_entity(name="kit", mode="fail")
    with TestEventBus(app, settings=SETTINGS) as bus:
        with pytest.raises(ActionRefused):
            bus.run_task(tasks.do_entity_action, entity_id=str(entity.id))

        assert [envelope.event_name for envelope in bus.published] == ["actionHappeningFailed"]
        (failure,) = bus.published
        assert failure.metadata.error_code == "ActionRefused"
        assert failure.payload["entityId"] == str(entity.id)
        assert "jane@example.com" not in failure.to_json()
        # delete_on_failure: the row is gone inside the test's transaction
        assert not Entity.objects.using("postgres").filter(id=entity.id).exists()

        bus.published.clear()
        other = new_entity(name="kit", mode="fail")
        with pytest.raises(ActionRefused):
            tasks.do_entity_action.delay(str(other.id))  # eager, propagating: Celery skips on_failure, the bus not

        assert [envelope.event_name for envelope in bus.published] == ["actionHappeningFailed"]
        assert bus.published.payloads("actionHappeningFailed")[0]["entityId"] == str(other.id)
        assert not Entity.objects.using("postgres").filter(id=other.id).exists()


class TkitDNoticedPayload(EventPayload):
    step: str


class TkitDRefused(Exception):
    pass


@app.task(name="tkitD.register_then_fail")
def register_then_fail(fail: bool) -> None:
    """Registers an after-commit event in its own transaction, then fails (rolling it back) when told to."""
    from django.db import transaction

    from eventbus.container import get_container

    publisher = get_container().event_publisher()
    transaction.on_commit(lambda: publisher.publish(TkitDNoticedPayload(step="outside")), using="postgres")
    with transaction.atomic(using="postgres"):
        transaction.on_commit(lambda: publisher.publish(TkitDNoticedPayload(step="inside")), using="postgres")
        if fail:
            raise TkitDRefused("rolled back")


def test_a_rolled_back_savepoints_callbacks_never_run_and_the_tasks_other_callbacks_do(
    django_postgres: Any, test_transaction: None
) -> None:
    with TestEventBus(app, settings=SETTINGS) as bus:
        with pytest.raises(TkitDRefused):
            bus.run_task(register_then_fail, True)
        assert bus.published.payloads("tkitDNoticed") == [{"step": "outside"}]

        bus.run_task(register_then_fail, False)
        assert bus.published.payloads("tkitDNoticed") == [{"step": "outside"}, {"step": "outside"}, {"step": "inside"}]
