"""``eventbus publish`` and ``eventbus tail`` on the emulator: the envelope as the library builds it, every bad input
(nothing sent), and tail's temporary queue and subscription removed on every way out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from eventbus import decode_message_body
from eventbus.cli import main
from eventbus.container import set_container
from tests.support import ROOT, Topology, make_topology, wait_until

pytestmark = pytest.mark.integration

SECRET = "Bearer tail-planted-secret-token-9e8d7c6b"


@pytest.fixture
def bus(sns: Any, sqs: Any, sns_sqs_endpoint: str, unique: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Topology]:
    topology = make_topology(sns, sqs, f"ev-{unique}")
    monkeypatch.setenv("EVENTBUS_ENDPOINT_URL", sns_sqs_endpoint)
    monkeypatch.setenv("EVENTBUS_REGION", "eu-west-2")
    monkeypatch.setenv("EVENTBUS_TOPIC", f"ev-{unique}-topic")
    monkeypatch.setenv("EVENTBUS_SERVICE", "cli-test")
    set_container(None)
    yield topology
    set_container(None)


def received(sqs: Any, url: str) -> list[dict[str, Any]]:
    return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])


def subscriptions(sns: Any, topic_arn: str) -> list[dict[str, Any]]:
    return sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]


def test_publish_builds_the_envelope_and_prints_the_message_id(bus: Topology, sqs: Any, capsys: Any) -> None:
    assert main(["publish", "orderPlaced", "--payload", '{"amount": 12}', "--entity-id", "o-1"]) == 0
    message_id = capsys.readouterr().out.strip()
    [message] = wait_until(lambda: received(sqs, bus.queue_url))
    notification = json.loads(message["Body"])
    assert notification["MessageId"] == message_id
    envelope = decode_message_body(message["Body"])
    assert envelope.event_name == "orderPlaced"
    assert envelope.payload == {"amount": 12}
    assert envelope.metadata.entity_id == "o-1"
    assert envelope.metadata.publisher_name == "cli-test"
    assert envelope.metadata.traceparent.startswith("00-")
    assert not envelope.metadata.contains_personal_data


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["publish", "orderPlaced", "--payload", "{not json"], "--payload is not valid JSON at line 1 column 2"),
        (["publish", "orderPlaced", "--payload", "[1, 2]"], "--payload must be a JSON object, got list"),
        (
            ["publish", "orderPlaced", "--payload", "{}", "--topic", "no-such-topic-x"],
            "topic 'no-such-topic-x' not found",
        ),
        (["publish", " ", "--payload", "{}"], "EVENT must be a non-empty event name"),
        (["publish", "orderPlaced"], "the following arguments are required: --payload"),
    ],
)
def test_publish_bad_input_exit_2_nothing_sent(
    bus: Topology, sqs: Any, capsys: Any, argv: list[str], error: str
) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert error in err.strip().splitlines()[-1]
    assert received(sqs, bus.queue_url) == []


def test_tail_prints_masked_events_and_removes_its_queue(bus: Topology, sns: Any, sqs: Any, capsys: Any) -> None:
    def publish_when_subscribed() -> None:
        wait_until(lambda: len(subscriptions(sns, bus.topic_arn)) == 2)
        for event, entity in (("ignored", "i-1"), ("orderPlaced", "o-5")):
            body = {"metadata": {"eventName": event, "entityId": entity, "authorization": SECRET}, "payload": {"n": 1}}
            sns.publish(TopicArn=bus.topic_arn, Message=json.dumps(body))

    publisher = threading.Thread(target=publish_when_subscribed)
    publisher.start()
    code = main(["tail", "--event", "orderPlaced", "--count", "1", "--seconds", "30", "--json"])
    publisher.join()
    out, err = capsys.readouterr()
    assert code == 0, err
    [line] = [json.loads(x) for x in out.splitlines()]
    assert line["eventName"] == "orderPlaced"
    assert line["entityId"] == "o-5"
    assert line["metadata"]["authorization"] == "***"
    assert SECRET.split()[1] not in out + err
    queue_name = err.split(" through ")[1].split()[0]
    assert [s["Endpoint"].rsplit(":", 1)[-1] for s in subscriptions(sns, bus.topic_arn)] == [bus.queue_name]
    assert not sqs.list_queues(QueueNamePrefix=queue_name).get("QueueUrls")


def test_tail_seconds_without_events_exits_1_and_cleans_up(bus: Topology, sns: Any, capsys: Any) -> None:
    assert main(["tail", "--seconds", "1"]) == 1
    assert "0 events; temporary queue and subscription removed" in capsys.readouterr().err
    assert len(subscriptions(sns, bus.topic_arn)) == 1


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["tail", "--topic", "no-such-topic-y"], "topic 'no-such-topic-y' not found"),
        (["tail", "--count", "0"], "positive"),
    ],
)
def test_tail_bad_input_exit_2_creates_nothing(
    bus: Topology, sns: Any, sqs: Any, capsys: Any, argv: list[str], error: str
) -> None:
    assert main(argv) == 2
    assert error in capsys.readouterr().err
    assert len(subscriptions(sns, bus.topic_arn)) == 1


def test_tail_stops_on_sigterm_and_removes_queue_and_subscription(
    bus: Topology, sns: Any, sqs: Any, sns_sqs_endpoint: str
) -> None:
    env = {
        **{key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"},  # no Django here
        "EVENTBUS_ENDPOINT_URL": sns_sqs_endpoint,
        "EVENTBUS_REGION": "eu-west-2",
        "EVENTBUS_TOPIC_ARN": bus.topic_arn,
        "PYTHONPATH": str(ROOT / "src"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "eventbus.cli", "tail"], env=env, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    first = process.stderr.readline()
    queue_name = first.split(" through ")[1].split()[0]
    assert len(subscriptions(sns, bus.topic_arn)) == 2
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, process.stderr.read()
    assert len(subscriptions(sns, bus.topic_arn)) == 1
    assert not sqs.list_queues(QueueNamePrefix=queue_name).get("QueueUrls")
