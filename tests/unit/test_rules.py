"""Naming rules, payload classes, the consumer's decision table, and metadata filling on publish."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import ClassVar
from uuid import UUID, uuid4

import pytest

from eventbus.adapters.memory import InMemoryPublisher
from eventbus.core.dispatch import Fate, decide
from eventbus.core.envelope import MAX_MESSAGE_BYTES, Metadata
from eventbus.core.naming import default_queue_name, event_name_from_class_name, event_name_from_function_name
from eventbus.core.publishing import EventPublisher, Outgoing
from eventbus.core.registry import Subscription, SubscriptionRegistry
from eventbus.core.tracing import handling
from eventbus.errors import SubscriptionError
from eventbus.payload import EventFailPayload, EventPayload
from tests.seed import SEED_DO_GOOD


@pytest.mark.parametrize(
    ("class_name", "event"),
    [
        ("ActionHappenedPayload", "actionHappened"),
        ("ActionHappeningFailedPayload", "actionHappeningFailed"),
        ("Payload", "payload"),
        ("OrderPlaced", "orderPlaced"),
    ],
)
def test_event_names_from_payload_classes(class_name: str, event: str) -> None:
    assert event_name_from_class_name(class_name) == event


@pytest.mark.parametrize(
    ("function", "event"),
    [
        ("do_good", "doGood"),
        ("test_some_task", "testSomeTask"),
        ("doNice", "doNice"),
        ("_private_thing", "privateThing"),
    ],
)
def test_event_names_from_functions(function: str, event: str) -> None:
    assert event_name_from_function_name(function) == event


def test_default_queue_name() -> None:
    assert default_queue_name("production", "myservice") == "production__myservice__queue"


class ActionHappenedPayload(EventPayload):
    id: UUID

    class Config:
        orm_mode = True


class ActionHappeningFailedPayload(EventFailPayload):
    pass


class RenamedPayload(EventPayload):
    event_name: ClassVar[str | None] = "somethingElse"


class PersonalPayload(EventPayload):
    contains_personal_data: ClassVar[bool] = True
    email: str


def test_seed_payload_classes_with_v1_config_build_from_attributes_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")

        class QuietPayload(EventPayload):
            id: UUID

            class Config:
                orm_mode = True

    entity_id = uuid4()
    assert QuietPayload.model_validate(SimpleNamespace(id=entity_id)).id == entity_id
    assert ActionHappenedPayload.model_config.get("from_attributes") is True
    assert ActionHappenedPayload.get_event_name() == "actionHappened"
    assert ActionHappeningFailedPayload.get_event_name() == "actionHappeningFailed"
    assert RenamedPayload.get_event_name() == "somethingElse"


def test_fail_payload_fields_are_camel_case_on_the_wire() -> None:
    payload = ActionHappeningFailedPayload(entity_id="42", error_message="it broke")
    assert payload.to_wire() == {"entityId": "42", "errorMessage": "it broke"}


REGISTRY = SubscriptionRegistry(
    [Subscription("doGood", "tasks.do_good"), Subscription("actionHappened", "tasks.typed", ActionHappenedPayload)]
)


def test_decision_table() -> None:
    assert decide(SEED_DO_GOOD, REGISTRY).fate is Fate.DISPATCH
    assert decide(SEED_DO_GOOD.replace('"doGood"', '"other"'), REGISTRY).fate is Fate.DROP
    assert decide("{", REGISTRY).fate is Fate.DEAD_LETTER
    typed = json.dumps({"metadata": {"eventName": "actionHappened"}, "payload": {"id": "not-a-uuid"}})
    decision = decide(typed, REGISTRY)
    assert decision.fate is Fate.DEAD_LETTER
    assert decision.reason.startswith("invalid-payload: payload.id")
    assert decide(SEED_DO_GOOD, REGISTRY, max_bytes=10).fate is Fate.DEAD_LETTER
    big = json.dumps({"metadata": {"eventName": "doGood"}, "payload": {"b": "x" * (MAX_MESSAGE_BYTES - 100)}})
    assert decide(big, REGISTRY).fate is Fate.DISPATCH  # up to 1 MiB by default
    oversized = decide(big.replace('"b"', '"b' + "x" * 101 + '"'), REGISTRY)
    assert (oversized.fate, oversized.reason.split(":")[0]) == (Fate.DEAD_LETTER, "oversized")
    other = SEED_DO_GOOD.replace('"doGood"', '"other"')
    assert decide(other, REGISTRY, unsubscribed=Fate.DEAD_LETTER).fate is Fate.DEAD_LETTER


def test_two_handlers_for_one_event_is_an_error() -> None:
    with pytest.raises(SubscriptionError, match="two handlers"):
        SubscriptionRegistry([Subscription("doGood", "a"), Subscription("doGood", "b")])


def test_publish_fills_metadata() -> None:
    port = InMemoryPublisher()
    publisher = EventPublisher(port, publisher_name="orders")
    entity_id = uuid4()
    before = datetime.now(UTC)
    publisher.publish(ActionHappenedPayload(id=entity_id), entity_id=entity_id)
    envelope = port.published[0]
    metadata = envelope.metadata
    assert metadata.event_name == "actionHappened"
    assert metadata.publisher_name == "orders"
    assert metadata.entity_id == str(entity_id)
    assert before - timedelta(seconds=1) <= metadata.publish_date <= datetime.now(UTC)
    assert metadata.traceparent.startswith("00-") and len(metadata.traceparent) == 55  # noqa: PT018
    assert envelope.payload == {"id": str(entity_id)}
    assert metadata.contains_personal_data is False


def test_publishing_while_handling_continues_the_trace() -> None:
    port = InMemoryPublisher()
    publisher = EventPublisher(port, publisher_name="orders")
    parent = Metadata(event_name="x", traceparent=f"00-{'a' * 32}-{'b' * 16}-01", tracestate="vendor=1")
    with handling(parent):
        publisher.publish(PersonalPayload(email="j@example.com"))
    publisher.publish(PersonalPayload(email="j@example.com"))
    inside, outside = (e.metadata for e in port.published)
    assert inside.traceparent.split("-")[1] == "a" * 32
    assert inside.traceparent.split("-")[2] != "b" * 16
    assert inside.tracestate == "vendor=1"
    assert outside.traceparent.split("-")[1] != "a" * 32
    assert inside.contains_personal_data is True


def test_batch_publish_keeps_order_and_per_event_metadata() -> None:
    port = InMemoryPublisher()
    publisher = EventPublisher(port, publisher_name="orders")
    items = [Outgoing(ActionHappenedPayload(id=uuid4()), entity_id=str(i)) for i in range(25)]
    ids = publisher.publish_batch(items)
    assert len(ids) == 25
    assert [e.metadata.entity_id for e in port.published] == [str(i) for i in range(25)]
