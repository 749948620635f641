"""``TestEventBus`` in process: memory adapters, a Celery app of this module, no broker.

``@subscribe`` registers shared tasks on every Celery app of the process, so this module's event names carry a
``tkitU`` prefix no other module uses.
"""

from __future__ import annotations

import json
from typing import Any

import celery
import pytest
from celery import Celery, shared_task
from pydantic import SecretStr

from eventbus import Envelope
from eventbus.adapters.memory import InMemoryPublisher
from eventbus.celery import subscribe
from eventbus.celery.trust import install_signing
from eventbus.container import build_container, get_container, set_container
from eventbus.core.envelope import Metadata
from eventbus.payload import EventPayload
from eventbus.settings import EventBusSettings
from eventbus.testing import Delivery, TestEventBus

app = Celery("eventbus-testkit-unit", set_as_current=False)
app.conf.task_serializer = "json"
install_signing(app, SecretStr("unit-signing-key"))  # as configure() does with EVENTBUS_SIGNING_KEY

NOTES: list[object] = []
CALLS: list[str] = []


class TkitUOrderPlacedPayload(EventPayload):
    order_id: int


class TkitUOrderShippedPayload(EventPayload):
    order_id: int


class TkitUUnhandledPayload(EventPayload):
    order_id: int


class TkitUBoom(Exception):
    pass


@shared_task(name="tkitU.note")
def tkit_note(order_id: int) -> None:
    NOTES.append(order_id)


@subscribe(event="tkitUOrderPlaced")
def tkit_order_placed(task: Any, payload: TkitUOrderPlacedPayload, metadata: Metadata) -> int:
    get_container().event_publisher().publish(
        TkitUOrderShippedPayload(order_id=payload.order_id), entity_id=payload.order_id
    )
    tkit_note.delay(payload.order_id)  # runs in place inside the bus: no broker
    CALLS.append(metadata.entity_id)
    return payload.order_id * 10


@subscribe(event="tkitUExplodes")
def tkit_explodes(task: Any, payload: dict[str, Any], metadata: Metadata) -> None:
    raise TkitUBoom("handler failed")


@subscribe(event="tkitUOnce", idempotent=True)
def tkit_once(task: Any, payload: dict[str, Any], metadata: Metadata) -> None:
    CALLS.append("once")


@pytest.fixture(autouse=True)
def _reset() -> None:
    NOTES.clear()
    CALLS.clear()


def placed(order_id: int) -> TkitUOrderPlacedPayload:
    return TkitUOrderPlacedPayload(order_id=order_id)


def test_a_payload_is_handled_and_what_the_handler_publishes_shows_in_published() -> None:
    with TestEventBus(app, settings={"service": "orders"}) as bus:
        delivery = bus.deliver(placed(7), entity_id="7")

        assert isinstance(delivery, Delivery)
        assert delivery.fate == "handled"
        assert delivery.result == 70
        assert delivery.envelope is not None
        assert delivery.envelope.metadata.entity_id == "7"
        assert delivery.envelope.metadata.publisher_name == "orders"
        assert CALLS == ["7"]
        assert bus.published.payloads("tkitUOrderShipped") == [{"order_id": 7}]
        assert [e.metadata.entity_id for e in bus.published.named("tkitUOrderShipped")] == ["7"]
        assert len(bus.published) == 1
        bus.published.clear()
        assert list(bus.published) == []


def test_delay_in_a_handler_runs_eagerly_with_a_signing_key_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTBUS_SIGNING_KEY", "unit-signing-key")
    with TestEventBus(app) as bus:
        assert bus.container.settings().signing_key is not None
        bus.deliver(placed(3))
        tkit_note.delay(4)  # from the test itself too: the shared task resolves to the bus's app

    assert NOTES == [3, 4]


def test_a_dict_envelope_and_a_raw_delivery_are_handled() -> None:
    envelope = {"metadata": {"eventName": "tkitUOrderPlaced", "publisherName": "other"}, "payload": {"order_id": 2}}
    with TestEventBus(app) as bus:
        assert bus.deliver(envelope).fate == "handled"
        built = bus.container.event_publisher().envelope(placed(5), entity_id=5)
        assert bus.deliver(built, raw=True).result == 50

    assert NOTES == [2, 5]


def test_a_body_that_is_not_json_is_dead_lettered_with_the_decoders_reason() -> None:
    with TestEventBus(app) as bus:
        delivery = bus.deliver("{not json")

        assert delivery.fate == "dead-letter"
        assert "not valid JSON" in delivery.reason
        assert delivery.envelope is None
        assert bus.dead_letters == [delivery]


def test_an_event_nobody_subscribes_to_is_dropped_or_dead_lettered_as_the_settings_say() -> None:
    with TestEventBus(app) as bus:
        delivery = bus.deliver(TkitUUnhandledPayload(order_id=1))
        assert delivery.fate == "drop"
        assert delivery.reason == "no handler subscribes to event 'tkitUUnhandled'"
        assert bus.dropped == [delivery]
        assert bus.dead_letters == []

    with TestEventBus(app, settings={"unsubscribed": "dead-letter"}) as bus:
        assert bus.deliver(TkitUUnhandledPayload(order_id=1)).fate == "dead-letter"
        assert bus.dropped == []


def test_an_invalid_payload_is_dead_lettered_where_the_handler_runs_with_the_workers_reason() -> None:
    envelope = {"metadata": {"eventName": "tkitUOrderPlaced"}, "payload": {"order_id": "seven", "card": "4111"}}
    with TestEventBus(app) as bus:
        delivery = bus.deliver(envelope)

    assert delivery.fate == "dead-letter"
    assert delivery.reason.startswith("invalid-payload:")
    assert "order_id" in delivery.reason
    assert "seven" not in delivery.reason  # reasons name fields, never values
    assert CALLS == []


def test_a_failing_handler_raises_by_default_or_is_recorded_with_raises_false() -> None:
    with TestEventBus(app) as bus:
        with pytest.raises(TkitUBoom):
            bus.deliver({"metadata": {"eventName": "tkitUExplodes"}, "payload": {}})

        delivery = bus.deliver({"metadata": {"eventName": "tkitUExplodes"}, "payload": {}}, raises=False)

    assert delivery.fate == "failed"
    assert isinstance(delivery.exception, TkitUBoom)
    assert delivery.reason == "TkitUBoom"


def test_an_idempotent_handler_runs_once_for_a_redelivered_envelope() -> None:
    body = {"metadata": {"eventName": "tkitUOnce", "eventId": "evt-1"}, "payload": {}}
    with TestEventBus(app) as bus:
        assert bus.deliver(body).fate == "handled"
        assert bus.deliver(json.dumps(body)).fate == "handled"  # the same event again, as a raw body
        assert bus.deliver({**body, "metadata": {"eventName": "tkitUOnce", "eventId": "evt-2"}}).fate == "handled"

    assert CALLS == ["once", "once"]


def test_the_previous_container_current_app_and_eager_settings_come_back_after_the_block() -> None:
    before = build_container(EventBusSettings.load(publisher="memory"))
    set_container(before)
    other = Celery("eventbus-testkit-other")
    other.set_current()
    app.conf.task_always_eager = False
    app.conf.task_eager_propagates = False
    try:
        with TestEventBus(app) as bus:
            assert get_container() is bus.container
            assert bus.container is not before
            assert celery.current_app._get_current_object() is app
            assert app.conf.task_always_eager is True
            assert app.conf.task_eager_propagates is True

        assert get_container() is before
        assert celery.current_app._get_current_object() is other
        assert app.conf.task_always_eager is False
        assert app.conf.task_eager_propagates is False
        with pytest.raises(RuntimeError, match="not entered"):
            _ = bus.container
    finally:
        set_container(None)


def test_a_block_sees_only_its_own_events() -> None:
    with TestEventBus(app) as first:
        first.deliver(placed(1))
    with TestEventBus(app) as second:
        assert list(second.published) == []
        second.deliver(placed(2))
        assert second.published.payloads("tkitUOrderShipped") == [{"order_id": 2}]


def test_an_override_of_the_containers_publisher_reaches_the_event_publisher() -> None:
    fake = InMemoryPublisher()
    with TestEventBus(app) as bus:
        publisher = bus.container.event_publisher()  # built before the override
        with bus.container.publisher.override(fake):
            bus.deliver(placed(9))
            publisher.publish(TkitUOrderShippedPayload(order_id=10))
        bus.deliver(placed(11))

        assert [envelope.payload for envelope in fake.published] == [{"order_id": 9}, {"order_id": 10}]
        assert bus.published.payloads("tkitUOrderShipped") == [{"order_id": 11}]


def test_published_compares_like_a_list_and_outside_a_block_the_bus_says_how_to_use_it() -> None:
    bus = TestEventBus(app)
    with pytest.raises(RuntimeError, match="with TestEventBus"):
        bus.deliver(placed(1))
    with bus:
        bus.deliver(placed(1))
        envelopes: list[Envelope] = bus.published.named("tkitUOrderShipped")
        assert bus.published == envelopes
        assert bus.published[0] is envelopes[0]
        assert "tkitUOrderShipped" in repr(bus.published)
