"""The trust boundary for task messages on the event queue (``eventbus.celery.trust``): signing and the checks.

Real Celery apps (in-memory broker, nothing sent) and real kombu messages; no SQS.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from celery import Celery
from kombu.message import Message
from kombu.serialization import prepare_accept_content
from pydantic import SecretStr

from eventbus.celery.subscribe import EventTask
from eventbus.celery.trust import SIGNATURE_HEADER, check_task_message, install_signing
from eventbus.errors import RefusedTask
from eventbus.payload import EventPayload

KEY = SecretStr("unit-test-key")
EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


class OrderPayload(EventPayload):
    order_id: int


@pytest.fixture
def app() -> Celery:
    app = Celery(f"trust-{uuid.uuid4().hex[:6]}", broker="memory://", set_as_current=False)

    @app.task(name="plain", shared=False)
    def plain(x: int) -> int:
        return x

    @app.task(
        name="order", base=EventTask, eventbus_event_name="orderPlaced", eventbus_payload_cls=OrderPayload, shared=False
    )
    def order(**kwargs: Any) -> None:
        return None

    return app


def sent_by(app: Celery, key: SecretStr, name: str, **options: Any) -> Message:
    """What ``app`` would put on the queue for ``send_task(name, ...)``, as the worker receives it."""
    captured: list[Any] = []
    app.amqp.send_task_message = lambda producer, task, message, *a, **kw: captured.append(message)
    install_signing(app, key)
    app.send_task(name, **options)
    message = captured[0]
    return received(message.headers, message.body)


def received(headers: dict[str, Any], body: Any, content_type: str = "application/json") -> Message:
    raw = json.dumps(body).encode()
    message = Message(
        body=raw, headers=headers, content_type=content_type, content_encoding="utf-8", properties={}, delivery_info={}
    )
    message.accept = prepare_accept_content(["json"])
    return message


def headers_for(task: str, **extra: Any) -> dict[str, Any]:
    return {"lang": "py", "task": task, "id": str(uuid.uuid4()), "retries": 0, **extra}


def test_a_message_signed_by_the_service_runs(app: Celery) -> None:
    message = sent_by(app, KEY, "plain", args=(1,))
    assert message.headers[SIGNATURE_HEADER].startswith("v1:")
    check_task_message(message, app.tasks, KEY)


def test_a_signed_message_with_its_body_or_eta_changed_is_refused(app: Celery) -> None:
    message = sent_by(app, KEY, "plain", args=(1,))
    tampered = received(message.headers, [[2], {}, EMBED])
    with pytest.raises(RefusedTask, match=r"^unauthenticated-task"):
        check_task_message(tampered, app.tasks, KEY)
    later = received({**message.headers, "eta": "2030-01-01T00:00:00+00:00"}, json.loads(message.body))
    with pytest.raises(RefusedTask, match=r"^unauthenticated-task"):
        check_task_message(later, app.tasks, KEY)


def test_a_message_signed_with_another_key_or_unsigned_is_refused(app: Celery) -> None:
    message = sent_by(app, SecretStr("someone else"), "plain", args=(1,))
    with pytest.raises(RefusedTask, match=r"^unauthenticated-task"):
        check_task_message(message, app.tasks, KEY)
    unsigned = received(headers_for("plain"), [[1], {}, EMBED])
    with pytest.raises(RefusedTask, match=r"^unauthenticated-task"):
        check_task_message(unsigned, app.tasks, KEY)


def test_celery_built_ins_need_a_signature_too(app: Celery) -> None:
    forged = received(headers_for("celery.backend_cleanup"), [[], {}, EMBED])
    for key in (KEY, None):
        with pytest.raises(RefusedTask, match=r"^unauthenticated-task"):
            check_task_message(forged, app.tasks, key)


def test_without_a_key_only_event_task_retries_that_pass_as_events_run(app: Celery) -> None:
    good = {"metadata": {"eventName": "orderPlaced"}, "payload": {"order_id": 7}}
    check_task_message(received(headers_for("order"), [[], good, EMBED]), app.tasks, None)
    with pytest.raises(RefusedTask, match=r"^unauthenticated-task: task 'plain'.*EVENTBUS_SIGNING_KEY"):
        check_task_message(received(headers_for("plain"), [[1], {}, EMBED]), app.tasks, None)
    # the payload is validated once, where the handler runs (which dead-letters it): not in the trust check
    bad_payload = {"metadata": {"eventName": "orderPlaced"}, "payload": {"order_id": "seven"}}
    check_task_message(received(headers_for("order"), [[], bad_payload, EMBED]), app.tasks, None)
    for kwargs in ({"metadata": {"eventName": "x"}, "payload": "text"}, {**good, "extra": 1}, {"payload": {}}):
        with pytest.raises(RefusedTask):
            check_task_message(received(headers_for("order"), [[], kwargs, EMBED]), app.tasks, None)
    with pytest.raises(RefusedTask, match=r"^invalid-task-message"):
        check_task_message(received(headers_for("order"), [[1], good, EMBED]), app.tasks, None)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"task": ["plain"]}, "invalid-task-message: header 'task' is not a string"),
        ({"task": "nobody.home"}, "unregistered-task: no task 'nobody.home' in this worker"),
        ({"task": "plain", "id": 5}, "invalid-task-message: header 'id' is a int"),
        ({"task": "plain", "timelimit": 5}, "invalid-task-message: header 'timelimit' is a int"),
        ({"task": "plain", "timelimit": [1, 2, 3]}, "invalid-task-message: header 'timelimit' is not a pair"),
        ({"task": "plain", "timelimit": ["a", None]}, "invalid-task-message: header 'timelimit' is not a pair"),
        ({"task": "plain", "retries": True}, "invalid-task-message: header 'retries' is a bool"),
        ({"task": "plain", "eta": "yesterday"}, "invalid-task-message: header 'eta' is not an ISO 8601 time"),
        ({"task": "plain", "expires": "soon"}, "invalid-task-message: header 'expires' is not an ISO 8601 time"),
        ({"task": "plain", "x": json.loads("[" * 150 + "]" * 150)}, "invalid-task-message: headers nest more"),
    ],
)
def test_malformed_task_messages_are_refused_with_a_reason_that_names_no_value(
    app: Celery, headers: dict[str, Any], reason: str
) -> None:
    message = received({**headers_for("plain"), **headers}, [[1], {}, EMBED])
    with pytest.raises(RefusedTask) as refused:
        check_task_message(message, app.tasks, KEY)
    assert str(refused.value).startswith(reason)


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        [[1], {}],
        {"args": [1]},
        [1, {}, EMBED],
        [[1], [], EMBED],
        [[json.loads("[" * 150 + "]" * 150)], {}, EMBED],
    ],
    ids=["not-json", "two-parts", "object", "args-not-a-list", "kwargs-not-an-object", "too-deep"],
)
def test_bodies_that_are_not_args_kwargs_embed_are_refused(app: Celery, body: Any) -> None:
    message = received(headers_for("plain"), body)
    if body == "not json":
        message = Message(
            body=b"not json", headers=headers_for("plain"), content_type="application/json", content_encoding="utf-8"
        )
        message.accept = prepare_accept_content(["json"])
    with pytest.raises(RefusedTask, match=r"^invalid-task-message: body"):
        check_task_message(message, app.tasks, KEY)


def test_only_json_is_decoded(app: Celery) -> None:
    pickled = base64.b64encode(b"\x80\x04K\x01.").decode()
    message = received(headers_for("plain"), pickled, content_type="application/x-python-serialize")
    with pytest.raises(
        RefusedTask, match=r"^invalid-task-message: content type .application/x-python-serialize. is not JSON"
    ):
        check_task_message(message, app.tasks, KEY)


def test_signing_wraps_one_app_only_and_only_once(app: Celery) -> None:
    other = Celery("other", broker="memory://", set_as_current=False)
    before = other.amqp.send_task_message
    install_signing(app, KEY)
    wrapped = app.amqp.send_task_message
    install_signing(app, KEY)
    assert app.amqp.send_task_message is wrapped
    assert other.amqp.send_task_message is before
