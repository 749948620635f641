"""``eventbus topology plan|apply|check -A app`` as a subprocess against the SNS/SQS endpoint (the embedded emulator,
or ``EVENTBUS_TEST_ENDPOINT_URL``): plan, apply, check, a second plan with nothing to do, then drift made by hand
with boto3 and named by ``check``. And ``eventbus emulator -A app``, which provisions the app's topology."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from eventbus.emulator.server import free_port
from tests.conftest import aws_kwargs
from tests.support import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.integration.topology_app"
# not imported from the app: importing it would register its shared tasks in every Celery app of this process
ORDER_PLACED = "topologyOrderPlaced"
ORDER_SHIPPED = "topologyOrderShipped"


def environment(names: dict[str, str], **settings: str) -> dict[str, str]:
    """This process's environment without its ``EVENTBUS_*`` settings, with these."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("EVENTBUS_")}
    env.update(
        EVENTBUS_REGION="eu-west-2",
        EVENTBUS_SERVICE="topology-itest",
        EVENTBUS_ENVIRONMENT="itest",
        **names,
        **settings,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
    )
    return env


def topology(endpoint: str, names: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m eventbus.cli topology ARGS -A APP`` with these settings."""
    return subprocess.run(
        [sys.executable, "-m", "eventbus.cli", "topology", *args, "-A", APP],
        env=environment(names, EVENTBUS_ENDPOINT_URL=endpoint),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def subscription_of(sns: Any, topic_arn: str) -> dict[str, str]:
    (subscription,) = sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    attributes: dict[str, str] = sns.get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])[
        "Attributes"
    ]
    return attributes


def test_plan_apply_check_then_drift(sns_sqs_endpoint: str, sns: Any, sqs: Any, unique: str) -> None:
    names = {"EVENTBUS_TOPIC": f"topo-{unique}", "EVENTBUS_QUEUE_NAME": f"topo-{unique}-queue"}

    planned = topology(sns_sqs_endpoint, names, "plan", "--json")
    assert planned.returncode == 0, planned.stderr
    document = json.loads(planned.stdout)
    kinds = {change["kind"] for change in document["changes"]}
    assert {"create-topic", "create-queue", "subscribe"} <= kinds
    assert document["topology"]["subscriptions"][0]["event_names"] == [ORDER_PLACED, ORDER_SHIPPED]
    assert "Traceback" not in planned.stderr
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_url(QueueName=names["EVENTBUS_QUEUE_NAME"])  # plan made nothing

    applied = topology(sns_sqs_endpoint, names, "apply")
    assert applied.returncode == 0, applied.stderr
    assert "applied" in applied.stdout

    topic_arn = sns.create_topic(Name=names["EVENTBUS_TOPIC"])["TopicArn"]
    queue_url = sqs.get_queue_url(QueueName=names["EVENTBUS_QUEUE_NAME"])["QueueUrl"]
    queue = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert int(queue["VisibilityTimeout"]) >= 120  # the slow handler's time limit, plus a margin
    assert "RedrivePolicy" in queue
    assert sqs.list_queue_tags(QueueUrl=queue_url)["Tags"]["eventbus:service"] == "topology-itest"
    attributes = subscription_of(sns, topic_arn)
    assert attributes["RawMessageDelivery"] == "false"
    assert attributes["FilterPolicyScope"] == "MessageBody"
    assert json.loads(attributes["FilterPolicy"]) == {"metadata": {"eventName": [ORDER_PLACED, ORDER_SHIPPED]}}

    checked = topology(sns_sqs_endpoint, names, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "no drift" in checked.stdout

    again = topology(sns_sqs_endpoint, names, "plan")
    assert again.returncode == 0, again.stderr
    assert "no changes" in again.stdout

    # drift, by hand: raw delivery switched on, one event name dropped from the filter policy
    arn = attributes["SubscriptionArn"]
    sns.set_subscription_attributes(SubscriptionArn=arn, AttributeName="RawMessageDelivery", AttributeValue="true")
    narrowed = json.dumps({"metadata": {"eventName": [ORDER_PLACED]}})
    sns.set_subscription_attributes(SubscriptionArn=arn, AttributeName="FilterPolicy", AttributeValue=narrowed)
    drifted = topology(sns_sqs_endpoint, names, "check")
    assert drifted.returncode == 1, drifted.stdout + drifted.stderr
    assert "raw-delivery" in drifted.stdout
    assert "filter-policy" in drifted.stdout
    assert ORDER_SHIPPED in drifted.stdout


def test_the_emulator_provisions_the_apps_topology(tmp_path: Path, unique: str) -> None:
    names = {"EVENTBUS_TOPIC": f"emu-{unique}", "EVENTBUS_QUEUE_NAME": f"emu-{unique}-queue"}
    port = free_port()
    log = tmp_path / "emulator.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "eventbus.cli", "emulator", "-A", APP, "--port", str(port)],
            env=environment(names),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: "Ctrl-C stops it." in log.read_text() or process.poll() is not None, timeout=30)
        assert process.poll() is None, log.read_text()
        endpoint = f"http://127.0.0.1:{port}"
        sns, sqs = boto3.client("sns", **aws_kwargs(endpoint)), boto3.client("sqs", **aws_kwargs(endpoint))
        queue_url = sqs.get_queue_url(QueueName=names["EVENTBUS_QUEUE_NAME"])["QueueUrl"]
        assert "RedrivePolicy" in sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
        topic_arn = sns.create_topic(Name=names["EVENTBUS_TOPIC"])["TopicArn"]
        filter_policy = json.loads(subscription_of(sns, topic_arn)["FilterPolicy"])
        assert filter_policy == {"metadata": {"eventName": [ORDER_PLACED, ORDER_SHIPPED]}}
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert "emulator stopped" in log.read_text()
