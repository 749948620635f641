"""``eventbus demo``: start the emulator, provision, run a worker, publish, show what happens, clean up."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

SEED_DO_GOOD = (
    '{"metadata": {"containsPersonalData": false, "tracestate": "", "traceparent": '
    '"00-00000000000000000000000000000000-0000000000000000-01", "errorOrigin": "", "errorCode": "", '
    '"authorization": "", "publishDate": "2021-03-17T16:24:23.792955", "entityId": '
    '"44f33071-e444-494f-bcff-b5e3594f7628", "publisherName": "TestPublisher", "eventName": "doGood"}, '
    '"payload": {"foo": "bar"}}'
)
SEED_DO_NICE = (
    '{"metadata": {"containsPersonalData": true, "tracestate": "", "traceparent": '
    '"00-00000000000000000000000000000000-0000000000000000-01", "errorOrigin": "", "errorCode": "", '
    '"authorization": "", "publishDate": "2021-03-17T16:23:21.214293", "entityId": '
    '"4123a425-e234-491-bcdf-b5as59cz7611", "publisherName": "TestPublisher", "eventName": "doNice"}, '
    '"payload": {"foo": "bar"}}'
)
QUEUE = "queue_name"
TOPIC = "local_sns"


class _WorkerOutput:
    """Echoes the worker's output with a prefix and remembers it, so the demo can wait for lines."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._pump, args=(process,), daemon=True)
        self._thread.start()

    def _pump(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            print(f"  [worker] {line.rstrip()}", flush=True)
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[str]], bool], timeout: float) -> bool:
        """Wait until ``predicate(lines)`` holds; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.lines):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True


def _seen(text: str, times: int) -> Callable[[list[str]], bool]:
    return lambda lines: sum(text in line for line in lines) >= times


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)  # warm shutdown of the worker and its pool
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def run_demo(argv: list[str] | None = None) -> int:
    """Run the demo; return 0 when every expected outcome was seen."""
    parser = argparse.ArgumentParser(prog="eventbus demo", description=__doc__)
    parser.add_argument("--port", type=int, default=4566, help="emulator port (0: any free port)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each outcome")
    args = parser.parse_args(argv)

    from eventbus.emulator import EmulatorServer, provision

    server = EmulatorServer(port=args.port)
    print(f"== starting the embedded SNS/SQS emulator on port {args.port or '(any free)'}", flush=True)
    server.start()
    worker: subprocess.Popen[str] | None = None
    try:
        endpoint = server.endpoint_url
        provisioned = provision(endpoint, topic=TOPIC, queues=(QUEUE,), max_receive_count=2, visibility_timeout=5)
        queue = provisioned.queues[QUEUE]
        print(
            f"== emulator at {endpoint}; topic {provisioned.topic_arn}; queue {queue.url} (DLQ {queue.dead_letter_url})"
        )
        os.environ.update(
            EVENTBUS_ENDPOINT_URL=endpoint,
            EVENTBUS_QUEUE_NAME=QUEUE,
            EVENTBUS_TOPIC=TOPIC,
            EVENTBUS_TOPIC_ARN=provisioned.topic_arn,
            EVENTBUS_SERVICE="demo",
        )
        print(f"== starting: celery -A eventbus.demo.app worker -Q {QUEUE} -c 2", flush=True)
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "eventbus.demo.app", "worker", "-Q", QUEUE, "-c", "2", "-l", "info"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
            start_new_session=True,
        )
        output = _WorkerOutput(worker)
        if not output.wait_for(lambda lines: any("ready." in line for line in lines), args.timeout):
            print("!! the worker did not become ready", file=sys.stderr)
            return 1
        return _publish_and_watch(endpoint, provisioned.topic_arn, queue.dead_letter_url, output, args.timeout)
    finally:
        print("== stopping the worker and the emulator", flush=True)
        if worker is not None:
            _stop(worker)
        server.stop()


def _publish_and_watch(endpoint: str, topic_arn: str, dlq_url: str, output: _WorkerOutput, timeout: float) -> int:
    import boto3

    from eventbus.demo.app import plain_celery_task

    aws: dict[str, Any] = {
        "endpoint_url": endpoint,
        "region_name": "eu-west-2",
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    }
    sns = boto3.client("sns", **aws)
    print("== publishing the seed's doGood and doNice events to SNS", flush=True)
    sns.publish(TopicArn=topic_arn, Message=SEED_DO_GOOD)
    sns.publish(TopicArn=topic_arn, Message=SEED_DO_NICE)
    print("== publishing an event nobody subscribed to, and a malformed message", flush=True)
    sns.publish(TopicArn=topic_arn, Message=SEED_DO_GOOD.replace('"doGood"', '"nobodyListens"'))
    sns.publish(TopicArn=topic_arn, Message='{"metadata": {"eventName": ')
    print("== sending a plain Celery task on the same queue", flush=True)
    plain_celery_task.delay(21)

    expectations = {
        "doGood handled": 1,
        "doNice handled": 1,
        "plain Celery task ran": 1,
        "dropped message": 1,
        "dead-lettering message": 1,
    }
    ok = True
    for text, n in expectations.items():
        seen = output.wait_for(_seen(text, n), timeout)
        print(f"== {'ok' if seen else 'MISSING'}: {text}", flush=True)
        ok = ok and seen
    sqs = boto3.client("sqs", **aws)
    dead = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
    for message in dead.get("Messages", []):
        attributes: dict[str, Any] = dict(message.get("MessageAttributes", {}))
        reason = attributes.get("eventbus-reason", {}).get("StringValue")
        source = attributes.get("eventbus-source-message-id", {}).get("StringValue")
        print(f"== dead-letter queue holds message {source}: reason {reason!r}", flush=True)
    print("== demo " + ("finished: every outcome seen" if ok else "FAILED: see MISSING above"), flush=True)
    return 0 if ok else 1
