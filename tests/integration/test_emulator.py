"""The embedded emulator: the seed's AWS CLI instructions, run verbatim (endpoint aside), then a real worker."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from eventbus.adapters.aws import provision
from eventbus.emulator import EmulatorServer
from eventbus.emulator.server import sqs_arn_from_url
from tests.seed import SEED_DO_GOOD, SEED_DO_NICE
from tests.support import Topology, start_worker, wait_until

pytestmark = pytest.mark.integration

AWS = shutil.which("aws", path=os.path.dirname(sys.executable)) or "aws"


def aws(endpoint: str, *args: str) -> dict[str, Any]:
    """Run the real AWS CLI against the endpoint, as the seed does."""
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="eu-west-2")
    done = subprocess.run(
        [AWS, f"--endpoint-url={endpoint}", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else {}


def test_queue_urls_resolve_to_arns() -> None:
    assert sqs_arn_from_url("http://localhost:4566/queue/queue_name", "eu-west-2", "000000000000") == (
        "arn:aws:sqs:eu-west-2:000000000000:queue_name"
    )
    assert sqs_arn_from_url("http://h:1/111122223333/q", "us-east-1", "000000000000") == (
        "arn:aws:sqs:us-east-1:111122223333:q"
    )


def test_seed_aws_cli_instructions_then_a_worker_runs_the_handlers(
    sns_sqs_endpoint: str, sqs: Any, tmp_path: Path
) -> None:
    if os.environ.get("EVENTBUS_TEST_ENDPOINT_URL"):
        pytest.skip("the queue-URL subscription is a feature of the embedded emulator, not of external endpoints")
    endpoint = sns_sqs_endpoint
    topic = aws(endpoint, "sns", "create-topic", "--name", "local_sns")["TopicArn"]
    assert topic == "arn:aws:sns:eu-west-2:000000000000:local_sns"
    aws(endpoint, "sqs", "create-queue", "--queue-name", "queue_name")
    aws(endpoint, "sqs", "create-queue", "--queue-name", "production__myservice__queue")
    aws(
        endpoint,
        "sns",
        "subscribe",
        "--topic-arn",
        "arn:aws:sns:eu-west-2:000000000000:local_sns",
        "--protocol",
        "sqs",
        "--notification-endpoint",
        f"{endpoint}/queue/queue_name",
    )
    queue_url = sqs.get_queue_url(QueueName="queue_name")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert arn == "arn:aws:sqs:eu-west-2:000000000000:queue_name"

    # the seed's create-queue makes no dead-letter queue: the worker's start-up check refuses that unless told to warn
    worker = start_worker(
        "tests.integration.worker_app",
        Topology(topic, "queue_name", queue_url, ""),
        endpoint,
        tmp_path,
        env={"EVENTBUS_STARTUP_CHECKS": "warn"},
    )
    assert "queue queue_name has no redrive policy" in worker.log()
    try:
        for message in (SEED_DO_GOOD, SEED_DO_NICE):
            aws(endpoint, "sns", "publish", "--topic-arn", topic, "--message", message)
        wait_until(lambda: worker.records("doGood") and worker.records("doNice"))
    finally:
        worker.stop()


def test_provision_is_idempotent_and_redrives_to_the_dead_letter_queue(sqs: Any, unique: str) -> None:
    with EmulatorServer(port=0) as server:
        clients = server.client("sns"), server.client("sqs")
        first = provision(*clients, topic=f"t-{unique}", queues=(f"q-{unique}",), max_receive_count=1)
        again = provision(*clients, topic=f"t-{unique}", queues=(f"q-{unique}",), max_receive_count=1)
        assert first == again
        queue = first.queues[f"q-{unique}"]
        assert first.topic_arn == f"arn:aws:sns:eu-west-2:000000000000:t-{unique}"
        import boto3

        from tests.conftest import aws_kwargs

        client = boto3.client("sqs", **aws_kwargs(server.endpoint_url))
        boto3.client("sns", **aws_kwargs(server.endpoint_url)).publish(TopicArn=first.topic_arn, Message="hello")
        received = client.receive_message(QueueUrl=queue.url, VisibilityTimeout=0)["Messages"]
        assert json.loads(received[0]["Body"])["Message"] == "hello"
        # received once (maxReceiveCount 1): the next receive moves it to the dead-letter queue
        assert client.receive_message(QueueUrl=queue.url).get("Messages", []) == []
        dead = client.receive_message(QueueUrl=queue.dead_letter_url)["Messages"]
        assert json.loads(dead[0]["Body"])["Message"] == "hello"


def test_emulator_refuses_a_taken_port() -> None:
    with EmulatorServer(port=0) as server, pytest.raises(RuntimeError, match="already in use"):
        EmulatorServer(port=server.port).start()


def test_the_emulator_redelivers_a_fifo_group_in_order_after_visibility_timeouts_ran_out() -> None:
    """moto alone delivers 2 and 3 before 0 and 1 here (it keeps 0 and 1 counted as in flight after their timeouts
    ran out, then forgets the group's lock when it meets 2): eventbus.emulator.fifo corrects it, as SQS behaves."""
    import boto3

    from eventbus.emulator import EmulatorServer

    with EmulatorServer(port=0, region="eu-west-2") as server:
        sqs = boto3.client(
            "sqs",
            endpoint_url=server.endpoint_url,
            region_name="eu-west-2",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        attributes = {"FifoQueue": "true", "ContentBasedDeduplication": "false", "VisibilityTimeout": "1"}
        url = sqs.create_queue(QueueName="ordered.fifo", Attributes=attributes)["QueueUrl"]
        for n in range(4):
            sqs.send_message(QueueUrl=url, MessageBody=str(n), MessageGroupId="g", MessageDeduplicationId=str(n))
        held = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=3)["Messages"]
        assert [m["Body"] for m in held] == ["0", "1", "2"]
        # a consumer extends 2 (its heartbeat), then dies: 0 and 1 run out first, while 2 is still in flight
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=held[2]["ReceiptHandle"], VisibilityTimeout=3)
        time.sleep(1.5)
        assert sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []) == []
        time.sleep(2.0)
        again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        assert [m["Body"] for m in again] == ["0", "1", "2", "3"]
