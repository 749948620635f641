"""eventbus.testing.live: the emulator and the real workers a service's own tests run on (issue #11).

The payload classes below are the publishing service's: ``tests.integration.live_app`` is never imported here
(importing an app registers its shared tasks in every Celery app of this process).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from eventbus import Envelope
from eventbus.errors import ConfigurationError
from eventbus.payload import EventPayload
from eventbus.testing.live import LiveEmulator, LiveWorker

pytestmark = pytest.mark.integration

APP = "tests.integration.live_app"
T = TypeVar("T")


class LiveKitOrderPlaced(EventPayload):
    """The worker's handler prints it and publishes ``liveKitOrderConfirmed``."""

    event_name = "liveKitOrderPlaced"
    order_id: int


class LiveKitOrderCancelled(EventPayload):
    """The worker's handler only prints it."""

    event_name = "liveKitOrderCancelled"
    order_id: int


@pytest.fixture(scope="module")
def emulator() -> Iterator[LiveEmulator]:
    """One emulator for the module, as a service's test session would have."""
    with LiveEmulator() as running:
        yield running


@pytest.fixture(scope="module")
def worker(emulator: LiveEmulator) -> Iterator[LiveWorker]:
    """A worker of the live app on a queue of its own."""
    with LiveWorker(APP, emulator) as running:
        yield running


def eventually(check: Callable[[], T], timeout: float = 20.0) -> T:
    """``check()`` once it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(0.1)
    return value


def events(worker: LiveWorker, name: str, entity_id: str) -> list[Envelope]:
    """The events named ``name`` about ``entity_id`` that reached the worker's topic so far."""
    return [e for e in worker.published if e.event_name == name and e.metadata.entity_id == entity_id]


def confirming_queues(worker: LiveWorker, entity_id: str) -> set[str]:
    """The queues of the workers whose confirmation of ``entity_id`` reached the topic."""
    return {e.payload["queue"] for e in events(worker, "liveKitOrderConfirmed", entity_id)}


def queue_names(sqs: Any, prefix: str) -> set[str]:
    return {url.rsplit("/", 1)[-1] for url in sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", [])}


def subscribed_endpoints(sns: Any) -> set[str]:
    return {s["Endpoint"] for page in sns.get_paginator("list_subscriptions").paginate() for s in page["Subscriptions"]}


def test_a_published_event_runs_its_handler_and_what_it_publishes_reaches_the_topic(worker: LiveWorker) -> None:
    order = random.randrange(10**9)
    worker.publish(LiveKitOrderPlaced(order_id=order), entity_id=f"order-{order}")

    worker.wait_for(f"liveKit placed order {order} handled on {worker.queue_name}")
    confirmed = worker.wait_for_published("liveKitOrderConfirmed")
    assert confirmed.metadata.entity_id == f"order-{order}"
    assert confirmed.payload == {"order_id": order, "queue": worker.queue_name}
    assert confirmed.metadata.publisher_name == "service"  # the worker's settings, not the test's publisher
    # the event the test published went through the topic too
    assert events(worker, "liveKitOrderPlaced", f"order-{order}")


def test_waiting_for_what_never_comes_fails_showing_what_did(worker: LiveWorker) -> None:
    with pytest.raises(AssertionError, match=r"does not contain 'liveKit never printed' \(within 0.5s\)") as info:
        worker.wait_for("liveKit never printed", timeout=0.5)
    assert " ready." in str(info.value)  # the output's tail

    worker.publish(LiveKitOrderCancelled(order_id=1))
    with pytest.raises(AssertionError, match=r"no 'liveKitNeverPublished' event .* \(seen: .*liveKitOrderCancelled"):
        worker.wait_for_published("liveKitNeverPublished", timeout=1)


def test_exit_stops_the_worker_and_removes_its_queues_and_subscriptions(emulator: LiveEmulator) -> None:
    sns, sqs = emulator.client("sns"), emulator.client("sqs")
    spies_before = queue_names(sqs, "eventbus_live_spy_")
    with LiveWorker(APP, emulator) as worker:
        queue = worker.queue_name
        assert queue_names(sqs, queue) == {queue, f"{queue}__dlq"}
        arn = sqs.get_queue_attributes(QueueUrl=sqs.get_queue_url(QueueName=queue)["QueueUrl"], AttributeNames=["All"])
        queue_arn = arn["Attributes"]["QueueArn"]
        assert queue_arn in subscribed_endpoints(sns)
        assert len(queue_names(sqs, "eventbus_live_spy_") - spies_before) == 1

    assert "Warm shutdown" in worker.output  # SIGTERM: the worker finished its tasks and stopped
    assert queue_names(sqs, queue) == set()
    assert queue_arn not in subscribed_endpoints(sns)
    assert queue_names(sqs, "eventbus_live_spy_") == spies_before


def test_an_app_that_does_not_import_is_a_clear_error_showing_the_output(emulator: LiveEmulator, unique: str) -> None:
    # a secret's value that turns up in the output (here: in the module name Python cannot find) is masked
    secret = f"liveKitSecret{unique}"
    worker = LiveWorker(f"tests.integration.no_such_app_{secret}", emulator, env={"EVENTBUS_SIGNING_KEY": secret})
    with pytest.raises(ConfigurationError) as info:
        worker.start()

    text = str(info.value)
    assert "cannot provision the Celery app" in text
    assert "ConfigurationError: cannot load the Celery app" in text  # the subprocess's own line, from the tail
    assert "No module named 'tests.integration.no_such_app_**********'" in text
    assert secret not in text
    assert queue_names(emulator.client("sqs"), worker.queue_name) == set()


def test_a_worker_that_exits_before_it_is_ready_is_an_error_showing_why(emulator: LiveEmulator) -> None:
    # provisioning needs no database; the worker's outbox relay does, so the worker stops at start-up
    worker = LiveWorker(APP, emulator, env={"EVENTBUS_OUTBOX": "sqlalchemy"})
    with pytest.raises(ConfigurationError, match="exited with code 1 before it was ready") as info:
        worker.start()

    assert "the sqlalchemy adapters need EVENTBUS_DATABASE_URL" in str(info.value)
    assert queue_names(emulator.client("sqs"), worker.queue_name) == set()  # provisioned, then removed


def test_two_workers_on_one_emulator_each_consume_their_own_queue(emulator: LiveEmulator, unique: str) -> None:
    named = f"liveKit_{unique}"
    with (
        LiveWorker(APP, emulator) as first,
        LiveWorker(APP, emulator, env={"EVENTBUS_QUEUE_NAME": named}, concurrency=2) as second,
    ):
        assert second.queue_name == named
        assert first.queue_name not in (named, "local__service__queue")
        order = random.randrange(10**9)

        first.publish(LiveKitOrderCancelled(order_id=order))
        for worker in (first, second):
            worker.wait_for(f"liveKit cancelled order {order} handled on {worker.queue_name}")

        second.publish(LiveKitOrderPlaced(order_id=order), entity_id=f"order-{order}")
        # every worker of the topic confirms it (the module's worker too): each from its own queue
        both = {first.queue_name, named}
        eventually(lambda: both <= confirming_queues(first, f"order-{order}"))
        assert both <= confirming_queues(second, f"order-{order}")
