"""FIFO pure logic: message groups and deduplication ids (core/fifo.py), the payload's group choice, the worker's
one-message-per-group gate (celery/fifo.py) with stand-in messages, settings that must agree on FIFO."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from eventbus.adapters.memory import InMemoryPublisher
from eventbus.celery.fifo import GroupGate, message_group
from eventbus.core.fifo import GROUP_KEY, deduplication_id_of, message_group_of, valid_id
from eventbus.core.publishing import EventPublisher
from eventbus.payload import EventPayload
from eventbus.settings import EventBusSettings


class StepPayload(EventPayload):
    customer: str | None = None
    n: int = 0


class ByCustomerPayload(StepPayload):
    message_group_field: ClassVar[str | None] = "customer"


class AllInOnePayload(StepPayload):
    message_group: ClassVar[str | None] = "everything"


def envelope(payload: EventPayload, entity_id: object = None) -> Any:
    return EventPublisher(InMemoryPublisher(), "svc").envelope(payload, entity_id=entity_id)


def test_the_group_is_the_entity_unless_the_payload_class_chooses() -> None:
    assert message_group_of(envelope(StepPayload(customer="c1"), entity_id="order-7")) == "order-7"
    assert message_group_of(envelope(StepPayload(), entity_id=None)) == "step"  # no entity: the event name
    chosen = envelope(ByCustomerPayload(customer="c1"), entity_id="order-7")
    assert chosen.metadata.model_extra[GROUP_KEY] == "c1"  # on the wire, so the outbox and consumers keep it
    assert message_group_of(chosen) == "c1"
    assert message_group_of(envelope(ByCustomerPayload(customer=None), entity_id="order-7")) == "order-7"
    assert message_group_of(envelope(AllInOnePayload(customer="c1"), entity_id="order-7")) == "everything"
    assert GROUP_KEY not in (envelope(StepPayload(), entity_id=1).metadata.model_extra or {})


def test_ids_sqs_refuses_become_their_sha256() -> None:
    assert valid_id("order-7/line:3") == "order-7/line:3"
    for bad in ["with space", "é", "x" * 129, ""]:
        replaced = valid_id(bad)
        assert len(replaced) == 64
        assert replaced != bad
        assert valid_id(bad) == replaced  # the same group every time
    assert message_group_of(envelope(StepPayload(), entity_id="Zoë's order")) == valid_id("Zoë's order")


def test_the_deduplication_id_is_the_event_id_else_the_messages_hash() -> None:
    one, two = envelope(StepPayload(n=1), 1), envelope(StepPayload(n=1), 1)
    assert deduplication_id_of(one, one.to_json()) == deduplication_id_of(one, one.to_json())  # a re-publish
    assert deduplication_id_of(one, one.to_json()) != deduplication_id_of(two, two.to_json())  # two events
    one.metadata.__pydantic_extra__ = {"eventId": "evt-1"}
    assert deduplication_id_of(one, "anything") == "evt-1"


def test_settings_add_the_fifo_suffix_and_refuse_names_that_disagree() -> None:
    settings = EventBusSettings(fifo=True, service="orders")
    assert (settings.queue_name, settings.topic) == ("local__orders__queue.fifo", "local_sns.fifo")
    with pytest.raises(ValidationError, match=r"EVENTBUS_QUEUE_NAME 'q' does not end in \.fifo"):
        EventBusSettings(fifo=True, queue_name="q")
    with pytest.raises(ValidationError, match=r"EVENTBUS_TOPIC_ARN .* ends in \.fifo but EVENTBUS_FIFO is off"):
        EventBusSettings(topic_arn="arn:aws:sns:eu-west-2:000000000000:t.fifo")


# ------------------------------------------------------------------ the gate


@dataclass
class QoS:
    _delivered: dict[str, Any] = field(default_factory=dict)


@dataclass
class Channel:
    """Where the gate asks whether a message is still held: kombu's ``channel.qos._delivered``."""

    qos: QoS = field(default_factory=QoS)

    @property
    def delivered(self) -> dict[str, Any]:
        return self.qos._delivered


@dataclass
class Msg:
    """What the gate reads of a kombu message: its tag, channel, state and SQS attributes."""

    delivery_tag: str
    channel: Channel
    group: str | None = "g"
    acknowledged: bool = False

    message_id: str = ""

    @property
    def delivery_info(self) -> dict[str, Any]:
        attributes = {"MessageGroupId": self.group} if self.group else {}
        return {"sqs_message": {"Attributes": attributes, "MessageId": self.message_id or self.delivery_tag}}


class World:
    """A channel, messages held on it, the order they were routed in, and what was released (now or later)."""

    def __init__(self) -> None:
        self.channel = Channel()
        self.routed: list[str] = []
        self.released: list[str] = []
        self.released_later: list[str] = []
        self.later_seconds: list[int] = []
        self.gate = GroupGate(self.release, self.release_later, lambda message: 30)
        self.on_route: Callable[[Msg], None] = lambda message: None

    def message(self, tag: str, group: str | None = "g", message_id: str = "") -> Msg:
        message = Msg(tag, self.channel, group, message_id=message_id)
        self.channel.delivered[tag] = message
        return message

    def release(self, message: Any) -> None:
        self.released.append(message.delivery_tag)
        self.settle(message.delivery_tag, "released")

    def release_later(self, message: Any, seconds: int) -> None:
        self.released_later.append(message.delivery_tag)
        self.later_seconds.append(seconds)
        if message.delivery_tag in self.channel.delivered:  # the failed one is no longer held: only its visibility
            self.settle(message.delivery_tag, "left")

    def route(self, message: Any) -> None:
        self.routed.append(message.delivery_tag)
        self.on_route(message)

    def admit(self, message: Msg) -> None:
        group = message_group(message)  # type: ignore[arg-type]
        assert group is not None
        self.gate.admit(group, message, self.route)  # type: ignore[arg-type]

    def settle(self, tag: str, outcome: str) -> None:
        self.channel.delivered.pop(tag, None)
        self.gate.settled(tag, outcome)


def test_one_message_of_a_group_at_a_time_in_order_other_groups_free() -> None:
    world = World()
    for tag, group in [("a1", "a"), ("a2", "a"), ("b1", "b"), ("a3", "a"), ("b2", "b")]:
        world.admit(world.message(tag, group))
    assert world.routed == ["a1", "b1"]
    assert len(world.gate) == 3
    world.settle("b1", "deleted")
    assert world.routed == ["a1", "b1", "b2"]
    world.settle("a1", "deleted")
    world.settle("a2", "deleted")
    assert world.routed == ["a1", "b1", "b2", "a2", "a3"]
    assert message_group(world.message("s", None)) is None  # type: ignore[arg-type]


def test_the_ones_behind_a_failed_message_come_back_after_it_and_a_released_ones_with_it() -> None:
    world = World()
    for tag in ["g1", "g2", "g3"]:
        world.admit(world.message(tag))
    world.admit(world.message("h1", "h"))
    world.admit(world.message("h2", "h"))
    world.settle("g1", "left")  # its task failed: it and the ones behind it visible again together, in order
    assert (world.released_later, world.released) == (["g1", "g2", "g3"], [])
    assert world.later_seconds == [30, 30, 30]  # one visibility timeout from now, all of them
    world.settle("h1", "released")  # never started (shutdown): visible now, the one behind it too
    assert (world.released_later, world.released) == (["g1", "g2", "g3"], ["h2"])
    assert world.routed == ["g1", "h1"]
    assert len(world.gate) == 0
    # until g1 is back, anything else of its group that arrives (where SQS would not lock the group) goes back too
    world.admit(world.message("g4", message_id="g4"))
    assert world.released_later == ["g1", "g2", "g3", "g4"]
    world.admit(world.message("g1-again", message_id="g1"))  # the failed one, redelivered: the group goes on
    world.admit(world.message("g2-again", message_id="g2"))
    assert world.routed[-1] == "g1-again"
    world.settle("g1-again", "deleted")
    assert world.routed[-1] == "g2-again"


def test_messages_settled_as_soon_as_routed_let_the_group_go_on_without_recursion() -> None:
    world = World()
    world.on_route = lambda message: world.settle(message.delivery_tag, "deleted")  # dropped at once
    world.admit(world.message("first"))
    blocker = world.message("blocker")
    world.on_route = lambda message: None
    world.admit(blocker)
    world.on_route = lambda message: world.settle(message.delivery_tag, "deleted")
    for n in range(2000):  # more than Python's recursion limit, were each start nested in the one before
        world.admit(world.message(f"m{n}"))
    world.settle("blocker", "deleted")
    assert world.routed[-1] == "m1999"
    assert len(world.routed) == 2002
    assert len(world.gate) == 0


def test_from_shutdown_on_a_groups_next_message_is_released_instead_of_started() -> None:
    world = World()
    for tag in ["a1", "a2", "a3"]:
        world.admit(world.message(tag))
    world.admit(world.message("b1", "b"))
    world.admit(world.message("b2", "b"))
    world.channel.delivered.pop("a3")  # settled elsewhere meanwhile (released when the channel closed)
    assert world.gate.close() == 0  # every waiting one is behind a running one
    world.settle("a1", "deleted")  # the running one finished
    assert world.released == ["a2"]  # not started: a3 was no longer held
    world.admit(world.message("c1", "c"))  # received after the close: straight back
    assert world.released == ["a2", "c1"]
    world.settle("b1", "left")
    assert world.released_later == ["b1", "b2"]
    assert world.routed == ["a1", "b1"]
