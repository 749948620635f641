"""Provisioning an app with claim-check on (``EVENTBUS_LARGE_PAYLOAD_BUCKET``) makes the bucket with its expiry rule:
``eventbus emulator -A app`` as a subprocess, and :meth:`eventbus.testing.LiveEmulator.provision`. Both read back
with boto3 (path-style S3 addresses) on the emulator they provisioned."""

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

from eventbus.core.topology import EXPIRY_RULE_ID
from eventbus.emulator.server import free_port
from eventbus.testing.live import LiveEmulator
from tests.conftest import aws_kwargs, s3_client
from tests.support import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.integration.topology_app"
# not imported from the app: importing it would register its shared tasks in every Celery app of this process
EVENT_NAMES = ["topologyOrderPlaced", "topologyOrderShipped"]


def claim_check_settings(unique: str) -> dict[str, str]:
    return {
        "EVENTBUS_TOPIC": f"bucket-{unique}",
        "EVENTBUS_QUEUE_NAME": f"bucket-{unique}-queue",
        "EVENTBUS_LARGE_PAYLOAD_BUCKET": f"eventbus-{unique}-large",
        "EVENTBUS_LARGE_PAYLOAD_EXPIRY_DAYS": "20",
    }


def environment(settings: dict[str, str]) -> dict[str, str]:
    """This process's environment without its ``EVENTBUS_*`` settings, with these."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("EVENTBUS_")}
    env.update(
        EVENTBUS_REGION="eu-west-2",
        EVENTBUS_SERVICE="bucket-itest",
        EVENTBUS_ENVIRONMENT="itest",
        **settings,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
    )
    return env


def assert_claim_check_provisioned(endpoint: str, settings: dict[str, str]) -> None:
    """The bucket exists with eventbus's expiry rule, and the subscription filters on the ``eventName`` attribute."""
    s3 = s3_client(endpoint)
    bucket = settings["EVENTBUS_LARGE_PAYLOAD_BUCKET"]
    s3.head_bucket(Bucket=bucket)
    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert (rule["ID"], rule["Status"], rule["Expiration"]) == (EXPIRY_RULE_ID, "Enabled", {"Days": 20})
    sns = boto3.client("sns", **aws_kwargs(endpoint))
    topic_arn = sns.create_topic(Name=settings["EVENTBUS_TOPIC"])["TopicArn"]
    (subscription,) = sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    attributes: dict[str, Any] = sns.get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])[
        "Attributes"
    ]
    assert attributes["FilterPolicyScope"] == "MessageAttributes"
    assert json.loads(attributes["FilterPolicy"]) == {"eventName": EVENT_NAMES}


def test_the_emulator_makes_the_claim_check_bucket_of_the_app(tmp_path: Path, unique: str) -> None:
    settings = claim_check_settings(unique)
    port = free_port()
    log = tmp_path / "emulator.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "eventbus.cli", "emulator", "-A", APP, "--port", str(port)],
            env=environment(settings),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: "Ctrl-C stops it." in log.read_text() or process.poll() is not None, timeout=30)
        assert process.poll() is None, log.read_text()
        assert f"+ create bucket {settings['EVENTBUS_LARGE_PAYLOAD_BUCKET']}" in log.read_text()
        assert_claim_check_provisioned(f"http://127.0.0.1:{port}", settings)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert "emulator stopped" in log.read_text()


def test_a_live_provisioning_makes_the_claim_check_bucket(unique: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = claim_check_settings(unique)
    monkeypatch.chdir(ROOT)  # the provisioning subprocess imports the app from the current directory
    with LiveEmulator(port=0) as emulator:
        emulator.provision(APP, environment(settings))
        assert_claim_check_provisioned(emulator.endpoint_url, settings)
