"""configure(app)'s rule for a value the user set: keep it, replace it (saying why), or merge it."""

from __future__ import annotations

import logging

import pytest
from celery import Celery

from eventbus.celery import configure
from eventbus.celery.startup import mask_url
from eventbus.container import build_container
from eventbus.settings import EventBusSettings

ENDPOINT = "http://localhost:4566"


def configured(caplog: pytest.LogCaptureFixture, **conf: object) -> Celery:
    app = Celery("t", set_as_current=False)
    app.conf.update(conf)
    with caplog.at_level(logging.INFO, logger="eventbus.configure"):
        configure(app, build_container(EventBusSettings(endpoint_url=ENDPOINT, queue_name="svc__queue")))
    return app


def test_defaults_are_replaced_silently(caplog: pytest.LogCaptureFixture) -> None:
    app = configured(caplog)
    assert app.conf.worker_prefetch_multiplier == 10
    assert app.conf.task_default_queue == "svc__queue"
    assert app.conf.worker_consumer == "eventbus.celery.SQSConsumer"
    assert caplog.records == []


def test_prefetch_multiplier_is_kept_and_said(caplog: pytest.LogCaptureFixture) -> None:
    app = configured(caplog, worker_prefetch_multiplier=1)
    assert app.conf.worker_prefetch_multiplier == 1
    assert "keeps your worker_prefetch_multiplier=1" in caplog.text


def test_other_default_queue_is_replaced_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    app = configured(caplog, task_default_queue="plain-tasks")
    assert app.conf.task_default_queue == "svc__queue"
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "replaces your task_default_queue='plain-tasks'" in record.getMessage()
    assert "task_routes" in record.getMessage()


def test_redis_broker_url_is_replaced_with_its_credentials_masked(caplog: pytest.LogCaptureFixture) -> None:
    app = configured(caplog, broker_url="redis://user:s3cretpw@redis:6379/0")
    assert app.conf.broker_url.startswith("sqs://")
    assert "replaces your broker_url=redis://***@redis:6379/0" in caplog.text
    assert "s3cretpw" not in caplog.text
    assert "test:test" not in caplog.text


def test_sqs_broker_url_for_the_same_endpoint_is_kept(caplog: pytest.LogCaptureFixture) -> None:
    app = configured(caplog, broker_url="sqs://mykey:mysecret@localhost:4566")
    assert app.conf.broker_url == "sqs://mykey:mysecret@localhost:4566"
    assert "keeps broker_url sqs://***@localhost:4566" in caplog.text
    assert "mysecret" not in caplog.text


def test_sqs_broker_url_for_another_endpoint_is_replaced(caplog: pytest.LogCaptureFixture) -> None:
    app = configured(caplog, broker_url="sqs://k:s@elsewhere:9999")
    assert "elsewhere" not in app.conf.broker_url
    assert "replaces your broker_url" in caplog.text


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("worker_consumer", "celery.worker.consumer:Consumer.Other"),
        ("accept_content", ["json", "pickle"]),
        ("task_serializer", "pickle"),
        ("broker_transport", "redis"),
        ("worker_send_task_events", True),
    ],
)
def test_what_eventbus_needs_is_replaced_with_a_warning(
    caplog: pytest.LogCaptureFixture, key: str, value: object
) -> None:
    app = configured(caplog, **{key: value})
    assert app.conf[key] != value
    (record,) = [r for r in caplog.records if key in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert f"replaces your {key}=" in record.getMessage()


def test_transport_options_are_merged(caplog: pytest.LogCaptureFixture) -> None:
    app = configured(caplog, broker_transport_options={"queue_name_prefix": "dev-", "region": "us-east-1"})
    options = app.conf.broker_transport_options
    assert options["queue_name_prefix"] == "dev-"
    assert options["region"] == "eu-west-2"
    assert options["ack_batch_size"] == 10
    assert "replaces your broker_transport_options['region']='us-east-1'" in caplog.text


def test_configuring_again_is_no_users_value(caplog: pytest.LogCaptureFixture) -> None:
    app = configured(caplog)
    with caplog.at_level(logging.INFO, logger="eventbus.configure"):
        configure(app, build_container(EventBusSettings(endpoint_url=ENDPOINT, prefetch_multiplier=3)))
    assert app.conf.worker_prefetch_multiplier == 3
    assert caplog.records == []


def test_mask_url_hides_credentials_anywhere_in_a_text() -> None:
    assert mask_url("sqs://AKIA:abc/def@host:1") == "sqs://***@host:1"
    assert mask_url("'postgresql://u:p@db/x'") == "'postgresql://***@db/x'"
    assert mask_url("http://host:1/path") == "http://host:1/path"
