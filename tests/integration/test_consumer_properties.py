"""Property tests of the whole path a received message takes, not only ``decide()`` (issue 9).

Hypothesis generates SQS messages (any text, envelopes nested to every depth up to the size limit, SNS wrappers,
bodies shaped like kombu's envelopes and like Celery task messages, signed and forged) and hands each receive to the
real objects: eventbus's SQS channel (``_on_messages_ready``, as a receive's response arrives), kombu's consumer
(``accept=["json"]``, as Celery configures it), the :class:`EventRouter`, and, for what it dispatches, what Celery's
prefork hand-off does with it (a ``Request`` built from the message, its job pickled for a pool process, the body
decoded). The channel talks to the embedded emulator: dead-letter copies are real ``SendMessage`` calls.

The properties: nothing raises out of the channel; every message is either handed off (and the hand-off succeeds)
or settled (acknowledged or dead-lettered) at once, none is left held; nothing reaches the hand-off in a shape that
fails there (the router's last line of defence is never needed).
"""

from __future__ import annotations

import base64
import json
import logging
import pickle
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventbus.core.envelope import MAX_MESSAGE_BYTES, MAX_NESTING_DEPTH

pytestmark = pytest.mark.integration

KEY = "property-test-key"
EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


class Path:
    """The channel, consumer and router of one queue, and what became of each message."""

    def __init__(self, endpoint: str, sqs: Any) -> None:
        from celery import Celery
        from celery.worker.request import Request
        from kombu import Connection, Consumer, Queue
        from pydantic import SecretStr

        from eventbus.celery.acks import SqsAcknowledger
        from eventbus.celery.consumer import EventRouter
        from eventbus.celery.subscribe import EventTask, subscriptions_of
        from eventbus.celery.trust import install_signing
        from eventbus.core.registry import SubscriptionRegistry
        from eventbus.settings import EventBusSettings

        name = f"props-{uuid.uuid4().hex[:8]}"
        dlq = sqs.create_queue(QueueName=f"{name}__dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})
        self.url = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": redrive})["QueueUrl"]
        self.name = name
        self.app = Celery(name, set_as_current=False)
        settings = EventBusSettings(endpoint_url=endpoint, queue_name=name, region="eu-west-2")
        from eventbus.celery.app import celery_config

        self.app.conf.update(celery_config(settings))
        self.key = SecretStr(KEY)
        install_signing(self.app, self.key)

        @self.app.task(name="plain", shared=False)
        def plain(*args: Any, **kwargs: Any) -> None:
            return None

        @self.app.task(name="doGood", base=EventTask, eventbus_event_name="doGood", shared=False)
        def do_good(**kwargs: Any) -> None:
            return None

        self.handed_off: list[str] = []
        # only this test's tasks: shared tasks of app modules other tests imported would join app.tasks
        tasks = {task.name: task for task in (plain, do_good)}
        self.router = EventRouter(
            SubscriptionRegistry(subscriptions_of(tasks.values())),
            SqsAcknowledger(),
            tasks=tasks,
            signing_key=self.key,
        )

        def hand_off(message: Any) -> None:
            """What Celery's strategy and the prefork pool do with a dispatched message."""
            request = Request(message, app=self.app, task=tasks[message.headers["task"]])
            job = (request._type, request.id, request._request_dict, request._body, message.content_type, "utf-8")
            pickle.loads(pickle.dumps(job, protocol=4))
            json.loads(request._body)
            message.ack()
            self.handed_off.append(message.delivery_tag)

        self.connection = Connection(settings.broker_url(), transport="eventbus.celery.transport:Transport")
        self.connection.transport_options.update(self.app.conf.broker_transport_options)
        self.channel = self.connection.channel()
        self.consumer = Consumer(
            self.channel,
            queues=[Queue(name, no_declare=True)],
            accept=["json"],
            on_message=lambda message: self.router.route(message, hand_off),
        )
        self.consumer.consume()

    def receive(self, bodies: list[str]) -> list[str]:
        """Hand one receive of ``bodies`` to the channel as SQS's response would; return their receipt handles."""
        messages = [
            {"MessageId": str(uuid.uuid4()), "ReceiptHandle": f"rh-{uuid.uuid4().hex}", "Body": body} for body in bodies
        ]
        self.channel._on_messages_ready(self.url, self.name, {"Messages": messages})
        return [m["ReceiptHandle"] for m in messages]

    def held(self) -> list[str]:
        return list(self.channel.held())

    def close(self) -> None:
        self.consumer.cancel()
        self.connection.release()


@pytest.fixture(scope="module")
def path(sns_sqs_endpoint: str, sqs: Any) -> Iterator[Path]:
    running = Path(sns_sqs_endpoint, sqs)
    yield running
    running.close()


def envelope(payload: Any, **metadata: Any) -> str:
    return json.dumps({"metadata": {"eventName": "doGood", **metadata}, "payload": payload})


def deep_envelope(depth: int, opener: str) -> str:
    inner = opener * depth + "1" + ("]" if opener == "[" else "}") * depth
    return '{"metadata": {"eventName": "doGood"}, "payload": {"deep": ' + inner + "}}"


def sns_wrapper(message: str) -> str:
    return json.dumps({"Type": "Notification", "MessageId": str(uuid.uuid4()), "Message": message})


def task_body(headers: dict[str, Any], body: Any, *, encoding: Any = "base64") -> str:
    raw = json.dumps(body)
    return json.dumps(
        {
            "body": base64.b64encode(raw.encode()).decode() if encoding == "base64" else raw,
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": headers,
            "properties": {"body_encoding": encoding, "delivery_info": {}},
        }
    )


def signed_task_body(path: Path, task: str, args_json: str) -> str:
    """A task message signed with the worker's key (``args_json``: the arguments' JSON, of any depth)."""
    from eventbus.celery.trust import SIGNATURE_HEADER, signature

    headers = {"lang": "py", "task": task, "id": str(uuid.uuid4()), "retries": 0}
    raw = f"[{args_json}, {{}}, {json.dumps(EMBED)}]"
    headers[SIGNATURE_HEADER] = signature(path.key, headers, raw.encode())
    return json.dumps(
        {
            "body": base64.b64encode(raw.encode()).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": headers,
            "properties": {"body_encoding": "base64", "delivery_info": {}},
        }
    )


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)


@st.composite
def bodies(draw: st.DrawFn, path: Path) -> str:
    kind = draw(st.sampled_from(["text", "json", "deep", "sns-deep", "kombu", "task", "signed"]))
    if kind == "text":
        return draw(st.text(max_size=300))
    if kind == "json":
        return envelope(draw(JSON), **draw(st.dictionaries(st.text(max_size=10), JSON, max_size=3)))
    if kind in {"deep", "sns-deep"}:
        # every depth up to what fits in the size limit (6 bytes a level)
        depth = draw(st.one_of(st.integers(1, 2 * MAX_NESTING_DEPTH), st.integers(1, (MAX_MESSAGE_BYTES - 200) // 12)))
        body = deep_envelope(depth, draw(st.sampled_from(["[", '{"a": '])))
        return sns_wrapper(body) if kind == "sns-deep" else body
    if kind == "kombu":
        shape = draw(st.dictionaries(st.sampled_from(["properties", "body", "headers", "content-type"]), JSON))
        shape.setdefault("properties", draw(JSON))
        return json.dumps(shape)
    if kind == "task":
        headers = draw(st.dictionaries(st.sampled_from(["task", "id", "eta", "timelimit", "retries", "x"]), JSON))
        headers.setdefault("task", draw(st.sampled_from(["plain", "doGood", "celery.backend_cleanup", "nobody"])))
        encoding = draw(st.sampled_from(["base64", "bogus", None]))
        return task_body(headers, draw(JSON), encoding=encoding)
    depth = draw(st.one_of(st.integers(0, 2 * MAX_NESTING_DEPTH), st.integers(0, 20_000)))
    args = "[" + "[" * depth + "]" * depth + ", " + json.dumps(draw(JSON)) + "]"
    return signed_task_body(path, draw(st.sampled_from(["plain", "doGood"])), args)


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_received_message_is_handed_off_or_settled_at_once(
    path: Path, data: st.DataObject, caplog: pytest.LogCaptureFixture
) -> None:
    batch = data.draw(st.lists(bodies(path), min_size=1, max_size=10))
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        tags = path.receive(batch)
    held = set(path.held()) & set(tags)
    assert not held, "every message of the receive was handed off or settled at once"
    defences = [r.getMessage() for r in caplog.records if "failed on its way" in r.getMessage()]
    defences += [r.getMessage() for r in caplog.records if "could not be handed to the consumer" in r.getMessage()]
    assert not defences, "nothing reached the hand-off in a shape that fails there"


def test_envelopes_at_every_depth_are_handled_below_the_limit_and_dead_lettered_above(path: Path) -> None:
    for depth in [*range(MAX_NESTING_DEPTH - 5, MAX_NESTING_DEPTH + 5), 500, 5_000, 40_000]:
        before = len(path.handed_off)
        path.receive([deep_envelope(depth, '{"a": ')])
        # the envelope and its payload are two levels; "deep" holds ``depth`` more
        assert (len(path.handed_off) > before) == (depth + 2 <= MAX_NESTING_DEPTH), depth
