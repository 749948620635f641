"""``eventbus dlq peek|redrive`` on the emulator: decoded and masked output, filters, every bad input, redrive with
attributes and FIFO ids kept, and a redrive killed half-way then re-run (nothing lost, nothing duplicated)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from eventbus.cli import main
from eventbus.container import set_container
from tests.support import ROOT, Topology, make_topology, queue_depth

pytestmark = pytest.mark.integration

SECRET = "Bearer dlq-planted-secret-token-4f9a8b7c"
PERSONAL = "alice.dlq-personal@example.com"


def envelope(event: str, entity: str, marker: str, **metadata: Any) -> str:
    return json.dumps(
        {
            "metadata": {"eventName": event, "entityId": entity, "publishDate": "2024-01-01T00:00:00", **metadata},
            "payload": {"marker": marker},
        }
    )


def reason(text: str) -> dict[str, Any]:
    return {"eventbus-reason": {"DataType": "String", "StringValue": text}}


@pytest.fixture
def bus(
    sns: Any, sqs: Any, sns_sqs_endpoint: str, unique: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Topology]:
    topology = make_topology(sns, sqs, f"dlq-{unique}")
    for key, value in environment(sns_sqs_endpoint, topology).items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)  # the redrive journal's default place
    set_container(None)
    yield topology
    set_container(None)


def without_django(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment for a subprocess that is no Django project (other tests export DJANGO_SETTINGS_MODULE)."""
    return {key: value for key, value in environ.items() if key != "DJANGO_SETTINGS_MODULE"}


def environment(endpoint: str, topology: Topology) -> dict[str, str]:
    return {
        "EVENTBUS_ENDPOINT_URL": endpoint,
        "EVENTBUS_REGION": "eu-west-2",
        "EVENTBUS_TOPIC_ARN": topology.topic_arn,
    }


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message of a queue (consumed), waiting until none is left in flight."""
    found: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        response = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
            WaitTimeSeconds=0,
        )
        for message in response.get("Messages", []):
            found[message["MessageId"]] = message
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if not response.get("Messages") and queue_depth(sqs, url) == 0:
            break
    return list(found.values())


def plant(sqs: Any, topology: Topology) -> None:
    sqs.send_message(
        QueueUrl=topology.dlq_url,
        MessageBody=envelope("orderPlaced", "o-1", "m-placed", authorization=SECRET),
        MessageAttributes=reason("handler-failed: ValueError"),
    )
    personal = json.dumps(
        {
            "metadata": {"eventName": "customerMoved", "entityId": "c-7", "containsPersonalData": True},
            "payload": {"email": PERSONAL},
        }
    )
    sqs.send_message(QueueUrl=topology.dlq_url, MessageBody=personal, MessageAttributes=reason("invalid-payload: x"))
    # (\x7f: a control character SQS accepts; it refuses those below 0x20 but tab, newline and carriage return)
    sqs.send_message(QueueUrl=topology.dlq_url, MessageBody='not json\n\x7f "Authorization": ' + SECRET)


def test_peek_shows_decoded_masked_letters_and_consumes_nothing(bus: Topology, sqs: Any, capsys: Any) -> None:
    plant(sqs, bus)
    assert main(["dlq", "peek", bus.queue_name]) == 0
    out, err = capsys.readouterr()
    assert "event orderPlaced  entity o-1" in out
    assert "reason: handler-failed: ValueError" in out
    assert "event customerMoved  entity c-7" in out
    assert "<withheld: containsPersonalData>" in out
    assert "not an envelope (malformed-json)" in out
    assert "no reason attribute: moved by SQS" in out
    assert SECRET.split()[1] not in out + err
    assert PERSONAL not in out + err
    assert "hidden from other readers" in err
    assert "nothing is deleted" in err
    assert queue_depth(sqs, bus.dlq_url) == 3
    assert len(drain(sqs, bus.dlq_url)) == 3  # all visible again at once: put back, not left to time out


def test_peek_json_and_filters(bus: Topology, sqs: Any, capsys: Any) -> None:
    plant(sqs, bus)
    assert main(["dlq", "peek", bus.queue_name, "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 3
    placed = next(line for line in lines if line.get("eventName") == "orderPlaced")
    assert placed["metadata"]["authorization"] == "***"
    assert placed["entityId"] == "o-1"
    assert placed["reason"] == "handler-failed: ValueError"
    assert placed["receiveCount"] == 0
    assert placed["size"] > 0
    assert SECRET.split()[1] not in json.dumps(lines)

    assert main(["dlq", "peek", bus.queue_name, "--json", "--event", "customerMoved"]) == 0
    assert [json.loads(x)["entityId"] for x in capsys.readouterr().out.splitlines()] == ["c-7"]
    assert main(["dlq", "peek", bus.queue_name, "--json", "--entity", "o-1"]) == 0
    assert [json.loads(x)["eventName"] for x in capsys.readouterr().out.splitlines()] == ["orderPlaced"]
    assert main(["dlq", "peek", bus.queue_name, "--json", "--reason", "none"]) == 0
    assert [json.loads(x)["notAnEnvelope"] for x in capsys.readouterr().out.splitlines()] == ["malformed-json"]
    assert main(["dlq", "peek", bus.queue_name, "--json", "--reason", "INVALID-payload"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    assert main(["dlq", "peek", bus.queue_name, "--limit", "1", "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_peek_accepts_the_dead_letter_queue_name(bus: Topology, sqs: Any, capsys: Any) -> None:
    plant(sqs, bus)
    assert main(["dlq", "peek", f"{bus.queue_name}__dlq"]) == 0
    err = capsys.readouterr().err
    assert f"{bus.queue_name}__dlq is a dead-letter queue; its source is {bus.queue_name}" in err


def test_empty_queue_and_filter_matching_nothing_exit_1(bus: Topology, sqs: Any, capsys: Any) -> None:
    assert main(["dlq", "peek", bus.queue_name]) == 1
    assert "the dead-letter queue is empty" in capsys.readouterr().err
    assert main(["dlq", "redrive", bus.queue_name]) == 1
    plant(sqs, bus)
    assert main(["dlq", "peek", bus.queue_name, "--event", "nope"]) == 1
    assert "no message matched (--event nope)" in capsys.readouterr().err
    assert main(["dlq", "redrive", bus.queue_name, "--event", "nope"]) == 1
    assert queue_depth(sqs, bus.queue_url) == 0
    assert queue_depth(sqs, bus.dlq_url) == 3


@pytest.mark.parametrize(
    "argv",
    [
        ["dlq", "peek", "no-such-queue-for-dlq-test"],
        ["dlq", "redrive", "no-such-queue-for-dlq-test"],
        ["dlq", "redrive", "{queue}", "--to", "no-such-target-queue"],
        ["dlq", "peek", "{queue}", "--limit", "0"],
        ["dlq", "peek"],
        ["dlq", "nonsense", "{queue}"],
    ],
)
def test_bad_input_one_line_exit_2_nothing_moved(bus: Topology, sqs: Any, capsys: Any, argv: list[str]) -> None:
    plant(sqs, bus)
    assert main([part.format(queue=bus.queue_name) for part in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err
    assert "not found" in err[-1] or "error:" in err[-1]
    assert queue_depth(sqs, bus.queue_url) == 0
    assert queue_depth(sqs, bus.dlq_url) == 3


def test_queue_without_dead_letter_queue(sqs: Any, bus: Topology, unique: str, capsys: Any) -> None:
    sqs.create_queue(QueueName=f"lonely-{unique}")
    assert main(["dlq", "peek", f"lonely-{unique}"]) == 2
    assert "has no dead-letter queue" in capsys.readouterr().err


def test_redrive_selected_letters_keeps_body_and_attributes(bus: Topology, sqs: Any, capsys: Any) -> None:
    plant(sqs, bus)
    traced = envelope("orderPlaced", "o-2", "m-traced", traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    sqs.send_message(
        QueueUrl=bus.dlq_url,
        MessageBody=traced,
        MessageAttributes={**reason("handler-failed: boom"), "eventName": {"DataType": "String", "StringValue": "x"}},
    )
    assert main(["dlq", "redrive", bus.queue_name, "--event", "orderPlaced", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count(f"would move to {bus.queue_name}") == 2
    assert queue_depth(sqs, bus.queue_url) == 0
    assert queue_depth(sqs, bus.dlq_url) == 4

    assert main(["dlq", "redrive", bus.queue_name, "--event", "orderPlaced", "--progress-every", "1"]) == 0
    out, err = capsys.readouterr()
    assert out.count(f"moved to {bus.queue_name} as ") == 2
    assert "1 moved" in err
    assert "2 moved" in err
    assert SECRET.split()[1] not in out + err
    moved = {m["Body"]: m for m in drain(sqs, bus.queue_url)}
    assert set(moved) == {traced, envelope("orderPlaced", "o-1", "m-placed", authorization=SECRET)}
    attributes = moved[traced]["MessageAttributes"]
    assert attributes["eventbus-redriven-reason"]["StringValue"] == "handler-failed: boom"
    assert attributes["eventName"]["StringValue"] == "x"
    assert "eventbus-reason" not in attributes
    left = drain(sqs, bus.dlq_url)
    assert len(left) == 2
    assert not any("orderPlaced" in m["Body"] for m in left)
    assert not list(Path.cwd().glob("*.journal"))


def test_redrive_of_letters_sqs_moved_by_its_redrive_policy(bus: Topology, sqs: Any, capsys: Any) -> None:
    body = envelope("paymentTaken", "p-1", "m-sqs")
    sqs.send_message(QueueUrl=bus.queue_url, MessageBody=body)
    for _ in range(3):  # maxReceiveCount 2, visibility 1: the third receive finds it moved
        sqs.receive_message(QueueUrl=bus.queue_url, WaitTimeSeconds=2, VisibilityTimeout=1)
        time.sleep(1.1)
    assert main(["dlq", "peek", bus.queue_name, "--json", "--reason", "none"]) == 0
    [line] = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert line["eventName"] == "paymentTaken"
    assert line["reason"] == ""
    assert line["receiveCount"] >= 2
    assert main(["dlq", "redrive", bus.queue_name, "--drop-reason"]) == 0
    assert [m["Body"] for m in drain(sqs, bus.queue_url)] == [body]


def test_fifo_redrive_keeps_group_and_deduplication_ids(sqs: Any, bus: Topology, unique: str, capsys: Any) -> None:
    fifo = {"FifoQueue": "true"}
    dlq = sqs.create_queue(QueueName=f"f-{unique}__dlq.fifo", Attributes=fifo)["QueueUrl"]
    source = sqs.create_queue(QueueName=f"f-{unique}.fifo", Attributes=fifo)["QueueUrl"]
    body = envelope("orderPlaced", "o-9", "m-fifo")
    sqs.send_message(
        QueueUrl=dlq,
        MessageBody=body,
        MessageGroupId="order-o-9",
        MessageDeduplicationId="dedup-o-9",
        MessageAttributes=reason("handler-failed: x"),
    )
    assert main(["dlq", "redrive", f"f-{unique}.fifo"]) == 0
    [moved] = drain(sqs, source)
    assert moved["Body"] == body
    assert moved["Attributes"]["MessageGroupId"] == "order-o-9"
    assert moved["Attributes"]["MessageDeduplicationId"] == "dedup-o-9"
    assert drain(sqs, dlq) == []


KILLER = """
import os, signal, sys
from eventbus.adapters.aws import dead_letters
from eventbus.cli import main

calls = 0
original = dead_letters.DeadLetterQueues.delete

def delete(self, url, handle):
    global calls
    calls += 1
    if calls > int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)  # after its send, before its delete
    return original(self, url, handle)

dead_letters.DeadLetterQueues.delete = delete
sys.exit(main(sys.argv[2:]))
"""


def test_redrive_killed_half_way_then_rerun_loses_and_duplicates_nothing(
    bus: Topology, sqs: Any, sns_sqs_endpoint: str, tmp_path: Path, capsys: Any
) -> None:
    bodies = [envelope("orderPlaced", f"o-{n}", f"m-kill-{n}") for n in range(7)]
    for body in bodies:
        sqs.send_message(QueueUrl=bus.dlq_url, MessageBody=body, MessageAttributes=reason("handler-failed: x"))
    env = {**without_django(os.environ), **environment(sns_sqs_endpoint, bus), "PYTHONPATH": str(ROOT / "src")}
    argv = ["dlq", "redrive", bus.queue_name, "--visibility", "2", "--progress-every", "1"]
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, "3", *argv], env=env, cwd=tmp_path, capture_output=True, timeout=60
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    journal = tmp_path / f".eventbus-redrive-{bus.queue_name}__dlq.journal"
    assert "sent " in journal.read_text()  # the fourth: sent, not deleted
    time.sleep(2.5)  # what the killed run held comes back

    assert main([*argv, "--journal", str(journal)]) == 0
    err = capsys.readouterr().err
    assert "1 sent by an interrupted run (deleted now, not sent again)" in err
    assert "1 finished from an interrupted run" in err
    moved = [m["Body"] for m in drain(sqs, bus.queue_url)]
    assert sorted(moved) == sorted(bodies)  # each exactly once
    assert drain(sqs, bus.dlq_url) == []
    assert not journal.exists()


def test_redrive_interrupted_by_sigint_finishes_the_message_in_flight(
    bus: Topology, sqs: Any, sns_sqs_endpoint: str, tmp_path: Path
) -> None:
    bodies = [envelope("orderPlaced", f"o-{n}", f"m-int-{n}") for n in range(30)]
    for body in bodies:
        sqs.send_message(QueueUrl=bus.dlq_url, MessageBody=body)
    env = {**without_django(os.environ), **environment(sns_sqs_endpoint, bus), "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen(
        [sys.executable, "-m", "eventbus.cli", "dlq", "redrive", bus.queue_name, "--progress-every", "1"],
        env=env,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    for line in process.stderr:
        if "3 moved" in line:
            process.send_signal(signal.SIGINT)
            break
    rest = process.stderr.read()
    assert process.wait(timeout=30) == 130, rest
    assert "interrupted after" in rest
    time.sleep(0.5)
    first = [m["Body"] for m in drain(sqs, bus.queue_url)]
    left = [m["Body"] for m in drain(sqs, bus.dlq_url)]
    assert 3 <= len(first) < 30
    assert sorted(first + left) == sorted(bodies)
