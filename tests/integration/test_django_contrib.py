"""``eventbus.contrib.django`` in a Django 5 + Celery project (tests/django_contrib_project), run as a user runs it:
``python -m django check|eventbus_relay|eventbus_topology --settings ...`` in a subprocess. The check messages asserted
here are the lines ``manage.py check`` prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import make_topology

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "tests.django_contrib_project"


def environment(**values: str) -> dict[str, str]:
    """This process's environment without its ``EVENTBUS_*`` settings, with ``values``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("EVENTBUS_", "DJANGO_"))}
    env.update(values, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return env


def manage(settings: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m django ARGS --settings tests.django_contrib_project.SETTINGS``."""
    return subprocess.run(
        [sys.executable, "-m", "django", *args, "--settings", f"{PROJECT}.{settings}"],
        env=environment(**env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_is_clean_when_everything_is_right() -> None:
    result = manage("proj.settings", "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


MISCONFIGURED = [
    pytest.param(
        "proj.settings_outbox_without_adapter",
        "EVENTBUS: (eventbus.E002) eventbus keeps OUTBOX='django' rows in Django's database, but the app "
        "'eventbus.adapters.django_orm' that holds their tables is not in INSTALLED_APPS",
        'HINT: Add "eventbus.adapters.django_orm" to INSTALLED_APPS and run manage.py migrate.',
        id="outbox-without-adapter-app",
    ),
    pytest.param(
        "proj.settings_bad_payload",
        "(eventbus.E003) callback task 'tests.django_contrib_project.badpayload.tasks.ship_order': its payload "
        "class OrderShippedPayload requires tracking_number, which the model shop.Order has neither as a field nor "
        "as an attribute",
        "HINT: Add them to the model (a field or a property)",
        id="payload-field-missing",
    ),
    pytest.param(
        "proj.settings_duplicate_handler",
        "contribOrderPlaced: (eventbus.E004) event 'contribOrderPlaced' has 2 handlers: "
        "'tests.django_contrib_project.duplicates.tasks.also_on_order_placed', "
        "'tests.django_contrib_project.shop.tasks.on_order_placed'",
        "HINT: Keep one @subscribe task per event name",
        id="two-handlers-of-one-event",
    ),
    pytest.param(
        "proj.settings_queue_mismatch",
        "celery: (eventbus.W001) the Celery app 'proj' names the queue(s) 'legacy-orders' (task_default_queue / "
        "task_queues), but eventbus's QUEUE_NAME is 'contrib-test-queue'",
        'HINT: Set the queue once, in EVENTBUS["QUEUE_NAME"]',
        id="queue-mismatch",
    ),
    pytest.param(
        "unconfigured.settings",
        "celery: (eventbus.E005) the Celery app 'unconfigured' has 1 @subscribe task(s) but is not configured for "
        "eventbus (worker_consumer is 'celery.worker.consumer:Consumer', not 'eventbus.celery.SQSConsumer')",
        "HINT: Call eventbus.celery.configure(app) in the module that creates the app",
        id="app-without-configure",
    ),
    pytest.param(
        "settings_unknown_key",
        'EVENTBUS: (eventbus.E001) unknown key(s) in the Django setting EVENTBUS: EVENTBUS["ENDPOINT_URLL"] (did you '
        'mean "ENDPOINT_URL"?)',
        'HINT: Fix it in the Django setting EVENTBUS = {"NAME": ...} or the EVENTBUS_<NAME> environment variable',
        id="unknown-key",
    ),
    pytest.param(
        "settings_stray_setting",
        "EVENTBUS: (eventbus.E001) Django setting(s) EVENTBUS_ENDPOINT_URL are not read: eventbus reads the "
        'EVENTBUS_* environment variables and the Django setting EVENTBUS = {"ENDPOINT_URL": ...}',
        "HINT: Fix it in the Django setting EVENTBUS",
        id="stray-top-level-setting",
    ),
    pytest.param(
        "settings_invalid_value",
        'EVENTBUS: (eventbus.E001) invalid eventbus settings: EVENTBUS["WAIT_TIME_SECONDS"] (Django settings): '
        "Input should be a valid integer",
        "HINT: Fix it in the Django setting EVENTBUS",
        id="invalid-value",
    ),
    pytest.param(
        "settings_without_celery",
        "celery: (eventbus.W002) no Celery app found, so eventbus's task checks were skipped",
        "HINT: Import the Celery app in the project package (from .celery import app)",
        id="no-celery-app",
    ),
]


@pytest.mark.parametrize(("settings", "message", "hint"), MISCONFIGURED)
def test_check_names_each_misconfiguration(settings: str, message: str, hint: str) -> None:
    result = manage(settings, "check")
    output = result.stdout + result.stderr
    assert message in output, output
    assert hint in output, output
    assert "Traceback" not in output, output
    # errors fail the command (and a deploy running it); warnings do not
    assert result.returncode == (1 if ".E00" in message else 0), output
    assert "abc" not in output  # the invalid value is never echoed


def test_check_runs_only_eventbus_checks_by_tag() -> None:
    result = manage("proj.settings_bad_payload", "check", "--tag", "eventbus")
    assert result.returncode == 1
    assert "eventbus.E003" in result.stderr


@pytest.fixture
def pg_schema(postgres_url: str) -> Iterator[str]:
    """A schema of its own in the ``test`` database, migrated, so the outbox holds only this test's rows."""
    import psycopg

    schema = f"contrib_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f"create schema {schema}")
    try:
        migrated = manage("proj.settings_postgres", "migrate", "-v", "0", CONTRIB_PG_SCHEMA=schema)
        assert migrated.returncode == 0, migrated.stderr
        yield schema
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            connection.execute(f"drop schema {schema} cascade")


STORE_EVENT = """
from eventbus.adapters.django_orm.outbox import DjangoOutboxStore
from eventbus.core.envelope import Envelope
envelope = Envelope.model_validate({"metadata": {"eventName": "contribOrderPaid"}, "payload": {"orderId": "%s"}})
print(DjangoOutboxStore().add([envelope]))
"""


@pytest.mark.postgres
def test_relay_once_sends_a_stored_event(
    pg_schema: str, sns: Any, sqs: Any, sns_sqs_endpoint: str, unique: str
) -> None:
    topology = make_topology(sns, sqs, f"contrib-relay-{unique}")
    settings = {
        "CONTRIB_PG_SCHEMA": pg_schema,
        "EVENTBUS_ENDPOINT_URL": sns_sqs_endpoint,
        "EVENTBUS_TOPIC_ARN": topology.topic_arn,
        "EVENTBUS_QUEUE_NAME": topology.queue_name,
    }
    stored = manage("proj.settings_postgres", "shell", "-c", STORE_EVENT % unique, **settings)
    assert stored.returncode == 0, stored.stderr

    relayed = manage("proj.settings_postgres", "eventbus_relay", "--once", **settings)
    assert relayed.returncode == 0, relayed.stdout + relayed.stderr
    assert "eventbus_relay: 1 event(s) sent" in relayed.stdout

    messages = sqs.receive_message(QueueUrl=topology.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=5)
    bodies = [json.loads(json.loads(message["Body"])["Message"]) for message in messages.get("Messages", [])]
    assert [(body["metadata"]["eventName"], body["payload"]) for body in bodies] == [
        ("contribOrderPaid", {"orderId": unique})
    ]
    again = manage("proj.settings_postgres", "eventbus_relay", "--once", **settings)
    assert "eventbus_relay: 0 event(s) sent" in again.stdout, again.stdout + again.stderr  # sent rows are gone


def test_relay_refuses_with_the_outbox_off() -> None:
    result = manage("proj.settings_outbox_off", "eventbus_relay", "--once")
    assert result.returncode != 0
    assert 'CommandError: the outbox is off, so there is nothing to relay: set EVENTBUS["OUTBOX"]' in result.stderr


def test_topology_check_matches_eventbus_topology_check(sns_sqs_endpoint: str, unique: str) -> None:
    names = {
        "EVENTBUS_ENDPOINT_URL": sns_sqs_endpoint,
        "EVENTBUS_TOPIC": f"contrib-topo-{unique}",
        "EVENTBUS_QUEUE_NAME": f"contrib-topo-{unique}-queue",
    }
    cli = subprocess.run(
        [sys.executable, "-m", "eventbus.cli", "topology", "check", "-A", f"{PROJECT}.proj"],
        env=environment(**names, DJANGO_SETTINGS_MODULE=f"{PROJECT}.proj.settings"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    django = manage("proj.settings", "eventbus_topology", "check", **names)
    assert cli.returncode == 1, cli.stdout + cli.stderr  # nothing is deployed yet: drift
    assert (django.returncode, django.stdout, django.stderr) == (cli.returncode, cli.stdout, cli.stderr)
    assert f"queue contrib-topo-{unique}-queue" in django.stdout

    applied = manage("proj.settings", "eventbus_topology", "apply", **names)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    checked = manage("proj.settings", "eventbus_topology", "check", "--json", **names)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert json.loads(checked.stdout)["drift"] == []


def test_topology_reports_an_error_with_status_2() -> None:
    result = manage("proj.settings", "eventbus_topology", "check", "-A", "no.such.module")
    assert result.returncode == 2
    assert "eventbus topology check: ConfigurationError: cannot load the Celery app 'no.such.module'" in result.stderr


BUILD_STORE = """
import django
django.setup()
from eventbus.container import build_container
from eventbus.errors import ConfigurationError
container = build_container()  # the settings Django has set up
for provider in (container.outbox_store, container.deduplication_store):
    try:
        provider()
    except ConfigurationError as exc:
        print(exc)
"""


def test_the_django_stores_refuse_a_process_without_the_adapter_app() -> None:
    result = subprocess.run(
        [sys.executable, "-c", BUILD_STORE],
        env=environment(
            DJANGO_SETTINGS_MODULE=f"{PROJECT}.proj.settings_outbox_without_adapter", EVENTBUS_DEDUP_STORE="django"
        ),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    app = "'eventbus.adapters.django_orm'"
    fix = 'add "eventbus.adapters.django_orm" to INSTALLED_APPS and run manage.py migrate'
    assert result.stdout.splitlines() == [
        f"the Django outbox (EVENTBUS_OUTBOX=django) keeps its rows in a table of the app {app}, which is not "
        f"installed: {fix}",
        f"the Django deduplication store (EVENTBUS_DEDUP_STORE=django) keeps its rows in a table of the app {app}, "
        f"which is not installed: {fix}",
    ]


@pytest.mark.postgres
def test_relay_runs_until_sigterm(pg_schema: str, sns_sqs_endpoint: str, tmp_path: Path) -> None:
    import signal

    from tests.support import wait_until

    log = tmp_path / "relay.log"
    command = [sys.executable, "-m", "django", "eventbus_relay", "--settings", f"{PROJECT}.proj.settings_postgres"]
    env = environment(CONTRIB_PG_SCHEMA=pg_schema, EVENTBUS_ENDPOINT_URL=sns_sqs_endpoint, PYTHONUNBUFFERED="1")
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "relaying the outbox" in log.read_text() or process.poll() is not None, timeout=30)
        assert process.poll() is None, log.read_text()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "eventbus_relay: stopped (events not sent yet stay in the outbox)" in log.read_text()
