"""Planted secrets never reach a worker's logs or its task events (promise 7).

A worker runs at DEBUG level with task events on (captured to a file) while it handles events carrying a bearer
token in ``metadata.authorization`` and personal data in ``containsPersonalData`` payloads: handled, printed by the
seed's handler, logged and quoted in exceptions by careless handler code, retried, dead-lettered, dropped. Its whole
output and every task event are then searched for the planted values.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.reliability_report import record_figures
from tests.support import make_topology, start_worker, wait_until

pytestmark = pytest.mark.integration


def envelope(event: str, payload: dict[str, Any], **metadata: Any) -> str:
    return json.dumps({"metadata": {"eventName": event, "publisherName": "itest", **metadata}, "payload": payload})


def test_planted_secrets_never_reach_logs_or_task_events(
    sqs: Any, sns: Any, sns_sqs_endpoint: str, tmp_path: Path
) -> None:
    token = uuid.uuid4().hex + uuid.uuid4().hex
    authorization = f"Bearer {token}"
    email = f"jane-{uuid.uuid4().hex[:12]}@example.com"
    phone = f"+44 7700 {uuid.uuid4().int % 1_000_000:06d}"
    planted = {"authorization": authorization, "token": token, "email": email, "phone": phone}
    pii = {"email": email, "phone": phone}
    topology = make_topology(sns, sqs, f"secrets-{uuid.uuid4().hex[:8]}", visibility=2, max_receive_count=2)
    events_file = tmp_path / "events.jsonl"
    worker = start_worker(
        "tests.integration.reliability_app",
        topology,
        sns_sqs_endpoint,
        tmp_path,
        "-l",
        "debug",
        env={"EVENTBUS_TEST_EVENTS": str(events_file)},
    )
    try:
        bodies = [
            envelope("SeedStyle", pii, authorization=authorization, containsPersonalData=True),
            envelope("careless", {"marker": "token only"}, authorization=authorization),
            envelope("careless", {**pii, "retry": True}, authorization=authorization, containsPersonalData=True),
            envelope(f"nobody{uuid.uuid4().hex[:6]}", pii, authorization=authorization, containsPersonalData=True),
            json.dumps({"metadata": {"authorization": authorization, "containsPersonalData": True}, "payload": pii}),
        ]
        for body in bodies:
            sqs.send_message(QueueUrl=topology.queue_url, MessageBody=body)
        sns.publish(  # and once through SNS (the notification wrapper)
            TopicArn=topology.topic_arn,
            Message=envelope("careless", pii, authorization=authorization, containsPersonalData=True),
        )
        wait_until(lambda: "TASK EXECUTION" in worker.log(), timeout=30)
        wait_until(lambda: worker.log().count("cannot handle") >= 3, timeout=30)
        wait_until(lambda: "Retry in" in worker.log(), timeout=30)
        wait_until(lambda: "dead-lettering" in worker.log(), timeout=30)
        time.sleep(3)  # the failed messages come back once more (visibility 2 s) and fail again
    finally:
        worker.stop()
    log = worker.log()
    events = events_file.read_text() if events_file.exists() else ""
    leaks = {
        f"{name} in {where}": text.count(value)
        for name, value in planted.items()
        for where, text in (("log", log), ("task events", events))
        if value in text
    }
    record_figures(
        7,
        "DEBUG worker, task events on, 6 messages carrying a token and personal data",
        sent=len(bodies) + 1,
        log_lines=len(log.splitlines()),
        task_events=len(events.splitlines()),
        planted_values=len(planted),
        leaks=sum(leaks.values()),
    )
    # the capture really ran: debug lines with message bodies, failures with tracebacks, task events
    assert "TaskPool: Apply" in log
    assert "Traceback" in log
    assert '"type": "task-failed"' in events
    assert '"type": "task-received"' in events
    assert leaks == {}, f"planted values found: {leaks}"
