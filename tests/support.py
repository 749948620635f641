"""Test support: provisioned topic/queue/DLQ and a real Celery worker subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Topology:
    """A topic, a queue subscribed to it and the queue's dead-letter queue."""

    topic_arn: str
    queue_name: str
    queue_url: str
    dlq_url: str


def make_topology(sns: Any, sqs: Any, name: str, *, max_receive_count: int = 2, visibility: int = 1) -> Topology:
    """Create a unique topic, queue (with redrive to a DLQ) and the subscription."""
    topic_arn = sns.create_topic(Name=f"{name}-topic")["TopicArn"]
    dlq_url = sqs.create_queue(QueueName=f"{name}__dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)})
    queue_url = sqs.create_queue(
        QueueName=name, Attributes={"VisibilityTimeout": str(visibility), "RedrivePolicy": redrive}
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return Topology(topic_arn, name, queue_url, dlq_url)


def wait_until(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(interval)


@dataclass
class Worker:
    """A running ``celery worker`` subprocess and what it wrote."""

    process: subprocess.Popen[bytes]
    endpoint: str
    topology: Topology
    record_path: Path
    log_path: Path

    def records(self, kind: str | None = None) -> list[dict[str, Any]]:
        """What the handlers recorded so far."""
        if not self.record_path.exists():
            return []
        rows = [json.loads(line) for line in self.record_path.read_text().splitlines() if line]
        return [r for r in rows if kind is None or r["kind"] == kind]

    def log(self) -> str:
        """The worker's combined stdout and stderr so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Warm shutdown, then kill if it hangs."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_worker(
    app_module: str,
    topology: Topology,
    endpoint: str,
    tmp: Path,
    *extra: str,
    env: dict[str, str] | None = None,
) -> Worker:
    """Start ``celery -A app_module worker -Q <queue>`` and wait until it is ready."""
    record_path, log_path = tmp / "records.jsonl", tmp / "worker.log"
    env = dict(
        os.environ,
        **(env or {}),
        EVENTBUS_ENDPOINT_URL=endpoint,
        EVENTBUS_QUEUE_NAME=topology.queue_name,
        EVENTBUS_TOPIC_ARN=topology.topic_arn,
        EVENTBUS_SERVICE="itest",
        EVENTBUS_TEST_RECORD=str(record_path),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
        PYTHONUNBUFFERED="1",
    )
    cmd = [sys.executable, "-m", "celery", "-A", app_module, "worker", "-Q", topology.queue_name]
    cmd += ["-c", "2", "-P", "prefork", "-l", "info", *extra]
    with log_path.open("wb") as log:
        process = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    worker = Worker(process, endpoint, topology, record_path, log_path)
    try:
        wait_until(lambda: "ready." in worker.log() or process.poll() is not None, timeout=30)
        if process.poll() is not None:
            pytest.fail(f"worker exited with {process.returncode}:\n{worker.log()[-3000:]}")
    except BaseException:
        worker.stop()
        raise
    return worker


@contextmanager
def environment(values: dict[str, str], *, keep_existing: tuple[str, ...] = ()) -> Iterator[None]:
    """Set environment variables for the block (``keep_existing`` ones only if unset), then restore them all."""
    saved = {key: os.environ.get(key) for key in values}
    for key, value in values.items():
        if key not in keep_existing or key not in os.environ:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def queue_depth(sqs: Any, url: str) -> int:
    """Visible plus in-flight messages of a queue."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


def send_events(sqs: Any, url: str, event: str, payloads: list[dict[str, Any]]) -> None:
    """Send raw-delivery envelopes of ``event``, ten per ``SendMessageBatch``."""
    for start in range(0, len(payloads), 10):
        entries = [
            {"Id": str(i), "MessageBody": json.dumps({"metadata": {"eventName": event}, "payload": payload})}
            for i, payload in enumerate(payloads[start : start + 10])
        ]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)


def pool_children(pid: int) -> list[int]:
    """The pids of a worker's pool processes (its direct children)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    children.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return children


class Spy:
    """A raw-delivery queue subscribed to the topic: every event the tasks publish lands here."""

    def __init__(self, sns: Any, sqs: Any, topic_arn: str, name: str) -> None:
        self.sqs = sqs
        self.url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
        self.seen: list[dict[str, Any]] = []

    def poll(self) -> list[dict[str, Any]]:
        """Receive everything the queue holds now; return all events seen so far."""
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return self.seen
            self.seen.extend(json.loads(message["Body"]) for message in messages)
            self.sqs.delete_message_batch(
                QueueUrl=self.url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )

    def events_for(self, entity_id: str, *, settle: float = 0.0, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait for at least one event about ``entity_id``; then keep polling ``settle`` seconds for extras."""
        deadline = time.monotonic() + timeout
        while not self._mine(entity_id) and time.monotonic() < deadline:
            self.poll()
            time.sleep(0.2)
        end = time.monotonic() + settle
        while time.monotonic() < end:
            self.poll()
            time.sleep(0.2)
        found = self._mine(entity_id)
        assert found, f"no event for {entity_id} within {timeout}s"
        return found

    def _mine(self, entity_id: str) -> list[dict[str, Any]]:
        return [e for e in self.seen if e["metadata"]["entityId"] == entity_id]


class DeadLetters:
    """What a dead-letter queue received that carries ``marker``: read as it arrives (hidden for a minute), kept."""

    def __init__(self, sqs: Any, url: str, marker: str) -> None:
        self.sqs = sqs
        self.url = url
        self.marker = marker
        self._seen: dict[str, dict[str, Any]] = {}

    def messages(self) -> list[dict[str, Any]]:
        """Receive what arrived since the last call; return every message with the marker seen so far."""
        response = self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=60
        )
        for message in response.get("Messages", []):
            self._seen.setdefault(message["MessageId"], message)
        return [m for m in self._seen.values() if self.marker in m["Body"]]

    def reasons(self) -> list[str]:
        """The ``eventbus-reason`` of each (``""`` for one SQS's own redrive moved)."""
        attributes = (m.get("MessageAttributes", {}).get("eventbus-reason", {}) for m in self.messages())
        return [reason.get("StringValue", "") for reason in attributes]


def make_fifo_topology(sns: Any, sqs: Any, name: str, *, max_receive_count: int = 5, visibility: int = 2) -> Topology:
    """A FIFO topic, FIFO queue (with redrive to a FIFO DLQ) and the subscription; deduplication by id, not content."""
    topic_arn = sns.create_topic(
        Name=f"{name}-topic.fifo", Attributes={"FifoTopic": "true", "ContentBasedDeduplication": "false"}
    )["TopicArn"]
    fifo = {"FifoQueue": "true", "ContentBasedDeduplication": "false"}
    dlq_url = sqs.create_queue(QueueName=f"{name}__dlq.fifo", Attributes=fifo)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)})
    queue_url = sqs.create_queue(
        QueueName=f"{name}.fifo", Attributes={**fifo, "VisibilityTimeout": str(visibility), "RedrivePolicy": redrive}
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return Topology(topic_arn, f"{name}.fifo", queue_url, dlq_url)
