"""The seed's callback task (Django) and its SQLAlchemy twin (PostgreSQL) in real workers on the embedded SQS.

A spy queue subscribed to the topic receives the success and failure events the tasks publish.
"""

from __future__ import annotations

import importlib
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support import Spy, Worker, environment, make_topology, start_worker

pytestmark = pytest.mark.integration


def assert_metadata(event: dict[str, Any], *, name: str, entity_id: str, error_code: str, origin: str) -> None:
    metadata = event["metadata"]
    assert metadata["eventName"] == name
    assert metadata["entityId"] == entity_id
    assert metadata["errorCode"] == error_code
    assert metadata["errorOrigin"] == origin
    assert metadata["publisherName"] == "itest"
    assert metadata["containsPersonalData"] is False
    assert metadata["authorization"] == ""
    assert metadata["tracestate"] == ""
    assert metadata["traceparent"].startswith("00-")
    assert len(metadata["traceparent"]) == 55
    published = datetime.fromisoformat(metadata["publishDate"]).replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - published) < timedelta(minutes=1)


# ---------------------------------------------------------------- Django (the seed, verbatim)


@pytest.fixture(scope="module")
def django_side(
    sns: Any, sqs: Any, sns_sqs_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Worker, Spy, Any]]:
    tmp = tmp_path_factory.mktemp("django")
    topology = make_topology(sns, sqs, f"cb-dj-{uuid.uuid4().hex[:8]}", max_receive_count=5, visibility=30)
    spy = Spy(sns, sqs, topology.topic_arn, f"{topology.queue_name}-spy")
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.django_project.settings",
        "EVENTBUS_TEST_SQLITE": str(tmp / "db.sqlite3"),  # unless Django is already set up in this process
        "EVENTBUS_ENDPOINT_URL": sns_sqs_endpoint,
        "EVENTBUS_QUEUE_NAME": topology.queue_name,
        "EVENTBUS_TOPIC_ARN": topology.topic_arn,
        "EVENTBUS_SERVICE": "itest",
    }
    with environment(env, keep_existing=("EVENTBUS_TEST_SQLITE",)):
        from django.conf import settings
        from django.core.management import call_command

        celery_app = importlib.import_module("tests.django_project.celery_app")
        celery_app.app.set_current()  # shared tasks resolve to the current app: send through this one
        call_command("migrate", verbosity=0)
        tasks = importlib.import_module("tests.django_project.entities.tasks")
        worker_env = {
            "DJANGO_SETTINGS_MODULE": "tests.django_project.settings",
            "EVENTBUS_TEST_SQLITE": str(settings.DATABASES["default"]["NAME"]),  # the database this process uses
        }
        worker = start_worker("tests.django_project.celery_app", topology, sns_sqs_endpoint, tmp, env=worker_env)
        try:
            yield worker, spy, tasks
        finally:
            worker.stop()


def new_entity(**fields: Any) -> Any:
    from tests.django_project.entities.models import Entity

    return Entity.objects.create(**fields)


def entity_exists(entity_id: Any) -> bool:
    from tests.django_project.entities.models import Entity

    return Entity.objects.filter(id=entity_id).exists()


def test_seed_task_success_publishes_action_happened(django_side: tuple[Worker, Spy, Any]) -> None:
    _worker, spy, tasks = django_side
    entity = new_entity(name="ok")
    tasks.do_entity_action.delay(entity_id=str(entity.id))
    [event] = spy.events_for(str(entity.id), settle=1.0)
    assert_metadata(event, name="actionHappened", entity_id=str(entity.id), error_code="", origin="")
    assert event["payload"] == {"id": str(entity.id)}
    assert entity_exists(entity.id), "delete_on_success=False keeps the entity"


def test_seed_task_failure_publishes_action_happening_failed_and_deletes(django_side: tuple[Worker, Spy, Any]) -> None:
    _worker, spy, tasks = django_side
    entity = new_entity(name="bad", mode="fail")
    tasks.do_entity_action.delay(entity_id=str(entity.id))
    [event] = spy.events_for(str(entity.id), settle=1.0)
    assert_metadata(
        event,
        name="actionHappeningFailed",
        entity_id=str(entity.id),
        error_code="ActionRefused",
        origin="itest.tests.django_project.entities.tasks.do_entity_action",
    )
    assert event["payload"] == {
        "entityId": str(entity.id),
        "errorMessage": "ActionRefused raised while processing the entity",
    }
    assert "jane@example.com" not in json.dumps(event), "exception texts are not published"
    assert not entity_exists(entity.id), "delete_on_failure=True"


def test_missing_entity_fails_with_entity_not_found(django_side: tuple[Worker, Spy, Any]) -> None:
    _worker, spy, tasks = django_side
    missing = str(uuid.uuid4())
    tasks.do_entity_action.delay(entity_id=missing)
    [event] = spy.events_for(missing, settle=1.0)
    assert event["metadata"]["eventName"] == "actionHappeningFailed"
    assert event["metadata"]["errorCode"] == "EntityNotFound"
    assert event["payload"]["entityId"] == missing


def test_failure_on_first_attempt_then_success_publishes_only_success(django_side: tuple[Worker, Spy, Any]) -> None:
    _worker, spy, tasks = django_side
    entity = new_entity(mode="fail_once")
    tasks.retrying_entity_action.delay(entity_id=str(entity.id))
    events = spy.events_for(str(entity.id), settle=3.0)
    assert [e["metadata"]["eventName"] for e in events] == ["actionHappened"]
    wait_gone = time.monotonic() + 5
    while entity_exists(entity.id) and time.monotonic() < wait_gone:
        time.sleep(0.1)
    assert not entity_exists(entity.id), "delete_on_success=True"


def test_failure_after_all_retries_publishes_once(django_side: tuple[Worker, Spy, Any]) -> None:
    worker, spy, tasks = django_side
    entity = new_entity(mode="fail")
    tasks.retrying_entity_action.delay(entity_id=str(entity.id))
    events = spy.events_for(str(entity.id), settle=4.0)
    assert [e["metadata"]["eventName"] for e in events] == ["actionHappeningFailed"]
    from tests.django_project.entities.models import Entity

    assert Entity.objects.get(id=entity.id).touched == 0, "each attempt's change was rolled back"
    assert "Retry in" in worker.log()


def test_payload_that_cannot_be_built_is_a_failure_naming_the_fields(django_side: tuple[Worker, Spy, Any]) -> None:
    worker, spy, tasks = django_side
    entity = new_entity()
    tasks.strict_entity_action.delay(entity_id=str(entity.id))
    [event] = spy.events_for(str(entity.id), settle=1.0)
    assert event["metadata"]["eventName"] == "strictFailed"
    assert event["metadata"]["errorCode"] == "PayloadValidationError"
    message = event["payload"]["errorMessage"]
    assert "touched" in message
    assert "priority" in message
    assert worker.process.poll() is None


# ---------------------------------------------------------------- SQLAlchemy on PostgreSQL


@pytest.fixture(scope="module")
def sqlalchemy_side(
    sns: Any, sqs: Any, sns_sqs_endpoint: str, postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Worker, Spy, Any]]:
    tmp: Path = tmp_path_factory.mktemp("sqla")
    database_url = postgres_url.replace("postgresql://", "postgresql+psycopg://")
    topology = make_topology(sns, sqs, f"cb-sa-{uuid.uuid4().hex[:8]}", max_receive_count=5, visibility=30)
    spy = Spy(sns, sqs, topology.topic_arn, f"{topology.queue_name}-spy")
    env = {
        "EVENTBUS_DATABASE_URL": database_url,
        "EVENTBUS_ENDPOINT_URL": sns_sqs_endpoint,
        "EVENTBUS_QUEUE_NAME": topology.queue_name,
        "EVENTBUS_TOPIC_ARN": topology.topic_arn,
        "EVENTBUS_SERVICE": "itest",
    }
    with environment(env):
        module = importlib.import_module("tests.sqlalchemy_app")
        module.create_schema()
        module.app.set_current()
        worker = start_worker(
            "tests.sqlalchemy_app", topology, sns_sqs_endpoint, tmp, env={"EVENTBUS_DATABASE_URL": database_url}
        )
        try:
            yield worker, spy, module
        finally:
            worker.stop()


def test_sqlalchemy_success_and_failure(sqlalchemy_side: tuple[Worker, Spy, Any]) -> None:
    _worker, spy, app = sqlalchemy_side
    good, bad = app.add_gadget("ok"), app.add_gadget("fail")
    app.do_gadget_action.delay(gadget_id=good)
    app.do_gadget_action.delay(gadget_id=bad)
    [ok] = spy.events_for(good, settle=1.0)
    [failed] = spy.events_for(bad, settle=1.0)
    assert_metadata(ok, name="gadgetActed", entity_id=good, error_code="", origin="")
    assert ok["payload"] == {"id": good, "name": "ok"}
    assert_metadata(
        failed,
        name="gadgetActionFailed",
        entity_id=bad,
        error_code="ActionRefused",
        origin="itest.tests.sqlalchemy_app.do_gadget_action",
    )
    assert app.gadget_exists(good)
    assert not app.gadget_exists(bad), "delete_on_failure=True"


def test_sqlalchemy_missing_entity_and_retry_then_success(sqlalchemy_side: tuple[Worker, Spy, Any]) -> None:
    _worker, spy, app = sqlalchemy_side
    missing = str(uuid.uuid4())
    app.do_gadget_action.delay(gadget_id=missing)
    [event] = spy.events_for(missing, settle=1.0)
    assert event["metadata"]["errorCode"] == "EntityNotFound"
    flaky = app.add_gadget("fail_once")
    app.retrying_gadget_action.delay(gadget_id=flaky)
    events = spy.events_for(flaky, settle=3.0)
    assert [e["metadata"]["eventName"] for e in events] == ["gadgetActed"]
    assert not app.gadget_exists(flaky), "delete_on_success=True"


def test_sqlalchemy_failure_after_all_retries_publishes_once_and_rolls_back(
    sqlalchemy_side: tuple[Worker, Spy, Any],
) -> None:
    _worker, spy, app = sqlalchemy_side
    doomed = app.add_gadget("fail")
    app.retrying_gadget_action.delay(gadget_id=doomed)
    events = spy.events_for(doomed, settle=4.0)
    assert [e["metadata"]["eventName"] for e in events] == ["gadgetActionFailed"]
    assert app.gadget_touched(doomed) == 0, "each attempt's change was rolled back"


def test_sqlalchemy_payload_that_cannot_be_built_names_the_fields(sqlalchemy_side: tuple[Worker, Spy, Any]) -> None:
    _worker, spy, app = sqlalchemy_side
    gadget = app.add_gadget("ok")
    app.strict_gadget_action.delay(gadget_id=gadget)
    [event] = spy.events_for(gadget, settle=1.0)
    assert event["metadata"]["eventName"] == "strictGadgetFailed"
    assert event["metadata"]["errorCode"] == "PayloadValidationError"
    assert "touched" in event["payload"]["errorMessage"]
    assert "colour" in event["payload"]["errorMessage"]
    assert app.gadget_touched(gadget) == 0, "the transaction was rolled back: nothing announced, nothing kept"
