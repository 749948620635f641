"""FIFO in the topology, pure: the names and flags ``topology_of`` derives with ``fifo``, what ``plan`` creates,
FIFO-ness that differs from the code's (drift that must be recreated, a plan that refuses), content-based
deduplication reported and switched off, and the worker's start-up check of a queue's FIFO-ness. Deployments are
:class:`Deployed` snapshots; ``simulate`` plays AWS (FIFO attributes included) so "apply, then plan again" runs
without a network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from eventbus.adapters.aws.inspection import QueueFacts
from eventbus.celery.startup import find_problems
from eventbus.core.topology import Change, ChangeKind, Deployed, DeployedQueue, DriftKind, Topology, topology_of
from eventbus.core.topology_plan import drift, plan
from eventbus.errors import ConfigurationError
from eventbus.settings import EventBusSettings
from tests.unit.test_topology import NOTHING, TAGS, queue_arn
from tests.unit.test_topology import simulate as simulate_standard

FIFO_ON = {"FifoQueue": "true", "ContentBasedDeduplication": "false"}
TOPIC_FIFO_ON = {"FifoTopic": "true", "ContentBasedDeduplication": "false"}


def orders(fifo: bool = True, **overrides: Any) -> Topology:
    suffix = ".fifo" if fifo else ""
    arguments: dict[str, Any] = {
        "topic": f"orders{suffix}",
        "queue": f"orders__queue{suffix}",
        "event_names": ["orderPlaced", "orderShipped"],
        "tags": TAGS,
        "fifo": fifo,
    }
    return topology_of(**(arguments | overrides))


def simulate(topology: Topology, deployed: Deployed, changes: Sequence[Change]) -> Deployed:
    """:func:`tests.unit.test_topology.simulate`, plus what AWS stores of the FIFO attributes the changes send."""
    # the standard simulation knows no topic attributes (it would take such a change for an unsubscribe)
    after = simulate_standard(topology, deployed, [c for c in changes if c.kind is not ChangeKind.SET_TOPIC_ATTRIBUTES])
    topic_attributes = {name: dict(found) for name, found in deployed.topic_attributes.items()}
    queues = {q.name: dict(q.attributes) for q in (after.queue, after.dead_letter_queue) if q is not None}
    for change in changes:
        name, values = change.resource, change.values
        if change.kind is ChangeKind.CREATE_TOPIC:
            topic_attributes[name] = dict(TOPIC_FIFO_ON) if values.get("fifo") else {}
        elif change.kind is ChangeKind.CREATE_QUEUE and values.get("fifo"):
            queues[name] |= FIFO_ON
        elif change.kind is ChangeKind.SET_TOPIC_ATTRIBUTES and "content_based_deduplication" in values:
            topic_attributes[name]["ContentBasedDeduplication"] = str(values["content_based_deduplication"]).lower()
        elif change.kind is ChangeKind.SET_QUEUE_ATTRIBUTES and "content_based_deduplication" in values:
            queues[name]["ContentBasedDeduplication"] = str(values["content_based_deduplication"]).lower()

    def queue(found: DeployedQueue | None) -> DeployedQueue | None:
        return None if found is None else replace(found, attributes=queues[found.name])

    return replace(
        after,
        queue=queue(after.queue),
        dead_letter_queue=queue(after.dead_letter_queue),
        topic_attributes=topic_attributes,
    )


def applied(topology: Topology, deployed: Deployed = NOTHING) -> Deployed:
    return simulate(topology, deployed, plan(topology, deployed))


def with_attributes(deployed: Deployed, which: str, **attributes: str) -> Deployed:
    """``deployed`` with these attributes set on its ``"queue"``, ``"dead_letter_queue"`` or topic named ``which``."""
    if which in ("queue", "dead_letter_queue"):
        found = getattr(deployed, which)
        assert found is not None
        return replace(deployed, **{which: replace(found, attributes={**found.attributes, **attributes})})
    topics = {**deployed.topic_attributes, which: {**deployed.topic_attributes.get(which, {}), **attributes}}
    return replace(deployed, topic_attributes=topics)


def without(deployed: Deployed, which: str, *names: str) -> Deployed:
    """``deployed`` with these attributes removed from its queue, dead-letter queue or the topic named ``which``."""
    if which in ("queue", "dead_letter_queue"):
        found = getattr(deployed, which)
        assert found is not None
        kept = {key: value for key, value in found.attributes.items() if key not in names}
        return replace(deployed, **{which: replace(found, attributes=kept)})
    kept = {key: value for key, value in deployed.topic_attributes[which].items() if key not in names}
    return replace(deployed, topic_attributes={**deployed.topic_attributes, which: kept})


# --- what the code implies -------------------------------------------------------------------------------------------


def test_fifo_topology_has_fifo_names_and_a_fifo_dead_letter_queue() -> None:
    topology = orders()
    assert topology.publishes_to == ("orders.fifo",)
    assert (topology.queue.name, topology.queue.dead_letter_name) == ("orders__queue.fifo", "orders__queue__dlq.fifo")
    assert topology.queue.fifo is True
    assert [s.topic for s in topology.subscriptions] == ["orders.fifo"]
    assert topology.subscriptions[0].event_names == ("orderPlaced", "orderShipped")


def test_without_fifo_the_topology_is_as_before() -> None:
    topology = orders(fifo=False)
    assert (topology.queue.name, topology.queue.dead_letter_name, topology.queue.fifo) == (
        "orders__queue",
        "orders__queue__dlq",
        False,
    )
    changes = plan(topology, NOTHING)
    assert not [change for change in changes if "fifo" in change.values]
    assert "+ create queue orders__queue__dlq (dead-letter queue)" in [str(change) for change in changes]
    assert "+ create topic orders (max message size 1048576 bytes)" in [str(change) for change in changes]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"topic": "orders"}, "topic"),  # FIFO on: the name must end in .fifo
        ({"queue": "orders__queue"}, "queue"),
        ({"queue": "orders.queue.fifo"}, "queue"),  # the part before .fifo follows the standard rules
        ({"queue": ".fifo"}, "queue"),
        ({"queue": "q" * 76 + ".fifo"}, "queue"),  # 81 characters
        ({"topic": "t" * 252 + ".fifo"}, "topic"),  # 257 characters
        ({"queue": "q" * 71 + ".fifo"}, "dead_letter_suffix"),  # the dead-letter queue's name gets 81
    ],
)
def test_fifo_names_are_refused_naming_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"^{field}: "):
        orders(**overrides)


def test_fifo_names_at_aws_longest_are_accepted() -> None:
    topology = orders(queue="q" * 70 + ".fifo", topic="t" * 251 + ".fifo")
    assert len(topology.queue.dead_letter_name) == 80
    assert len(topology.publishes_to[0]) == 256


@pytest.mark.parametrize("overrides", [{"topic": "orders.fifo"}, {"queue": "orders__queue.fifo"}])
def test_a_fifo_name_without_fifo_is_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match=r"no \.fifo while FIFO is off"):
        orders(fifo=False, **overrides)


# --- plan and drift on FIFO deployments ----------------------------------------------------------------------------


def test_plan_on_nothing_creates_a_fifo_topic_queue_and_dead_letter_queue() -> None:
    changes = plan(orders(), NOTHING)
    created = {change.resource: change for change in changes if change.kind.value.startswith("create")}
    assert created["orders.fifo"].values == {"fifo": True, "max_message_bytes": 1024 * 1024}
    assert created["orders__queue.fifo"].values == {"dead_letter": False, "fifo": True}
    assert created["orders__queue__dlq.fifo"].values == {"dead_letter": True, "fifo": True}
    lines = [str(change) for change in changes]
    assert "+ create topic orders.fifo (FIFO, max message size 1048576 bytes)" in lines
    assert "+ create queue orders__queue__dlq.fifo (FIFO, dead-letter queue)" in lines
    assert "+ create queue orders__queue.fifo (FIFO)" in lines
    subscribe = [change for change in changes if change.kind is ChangeKind.SUBSCRIBE]
    assert [(c.resource, c.values["queue"], c.values["event_names"]) for c in subscribe] == [
        ("orders.fifo", "orders__queue.fifo", ("orderPlaced", "orderShipped"))
    ]


def test_apply_then_plan_again_changes_nothing_and_reports_no_drift() -> None:
    topology = orders()
    deployed = applied(topology)
    assert deployed.queue is not None
    assert deployed.queue.attributes["FifoQueue"] == "true"
    assert deployed.topic_attributes["orders.fifo"]["FifoTopic"] == "true"
    assert plan(topology, deployed) == []
    assert drift(topology, deployed) == []


@pytest.mark.parametrize(
    ("which", "name", "what"),
    [
        ("queue", "orders__queue.fifo", "queue"),
        ("dead_letter_queue", "orders__queue__dlq.fifo", "dead-letter queue"),
    ],
)
def test_a_standard_queue_where_the_code_wants_fifo_is_drift_and_plan_refuses(which: str, name: str, what: str) -> None:
    topology = orders()
    deployed = without(applied(topology), which, "FifoQueue", "ContentBasedDeduplication")  # standard: no FifoQueue
    (found,) = [item for item in drift(topology, deployed) if item.kind is DriftKind.FIFO]
    assert found.detail.startswith(f"{what} {name} is a standard {what}, the code wants a FIFO one")
    assert "must be recreated" in found.detail
    with pytest.raises(ConfigurationError) as refused:
        plan(topology, deployed)
    text = str(refused.value)
    assert "\n" not in text
    assert text.startswith("plan cannot make the deployment match the code: ")
    assert f"{what} {name} is a standard {what}" in text


def test_a_standard_topic_where_the_code_wants_fifo_is_drift_and_plan_refuses() -> None:
    topology = orders()
    deployed = without(applied(topology), "orders.fifo", "FifoTopic", "ContentBasedDeduplication")
    assert [item.detail.split(":")[0] for item in drift(topology, deployed) if item.kind is DriftKind.FIFO] == [
        "topic orders.fifo is a standard topic, the code wants a FIFO one (EVENTBUS_FIFO)"
    ]
    with pytest.raises(
        ConfigurationError, match=r"topic orders\.fifo is a standard topic.*SNS cannot change FifoTopic"
    ):
        plan(topology, deployed)


def test_a_fifo_queue_where_the_code_wants_standard_is_drift_and_plan_refuses() -> None:
    topology = orders(fifo=False)
    deployed = with_attributes(applied(topology), "queue", **FIFO_ON)
    assert [item.kind for item in drift(topology, deployed)] == [DriftKind.FIFO]
    with pytest.raises(ConfigurationError, match=r"queue orders__queue is a FIFO queue, the code wants a standard one"):
        plan(topology, deployed)


def test_topic_attributes_not_read_are_not_judged() -> None:
    topology = orders()
    deployed = applied(topology)
    unread = replace(deployed, topic_attributes={})
    assert drift(topology, unread) == []
    assert plan(topology, unread) == []


@pytest.mark.parametrize(
    ("which", "name", "kind"),
    [
        ("queue", "orders__queue.fifo", ChangeKind.SET_QUEUE_ATTRIBUTES),
        ("dead_letter_queue", "orders__queue__dlq.fifo", ChangeKind.SET_QUEUE_ATTRIBUTES),
        ("orders.fifo", "orders.fifo", ChangeKind.SET_TOPIC_ATTRIBUTES),
    ],
)
def test_content_based_deduplication_is_reported_and_switched_off(which: str, name: str, kind: ChangeKind) -> None:
    topology = orders()
    deployed = with_attributes(applied(topology), which, ContentBasedDeduplication="true")
    (found,) = drift(topology, deployed)
    assert found.kind is DriftKind.CONTENT_BASED_DEDUPLICATION
    assert f"{name} has content-based deduplication on, the code sets it off" in found.detail
    changes = plan(topology, deployed)
    assert [(change.kind, change.resource, dict(change.values)) for change in changes] == [
        (kind, name, {"content_based_deduplication": False})
    ]
    assert str(changes[0]).endswith(f"{name}: content-based deduplication off")
    fixed = simulate(topology, deployed, changes)
    assert drift(topology, fixed) == []
    assert plan(topology, fixed) == []


def test_a_small_fifo_topic_with_deduplication_gets_one_change_for_both() -> None:
    topology = orders()
    deployed = with_attributes(
        applied(topology), "orders.fifo", ContentBasedDeduplication="true", MaximumMessageSize="262144"
    )
    changes = plan(topology, deployed)
    assert [(change.kind, dict(change.values)) for change in changes] == [
        (ChangeKind.SET_TOPIC_ATTRIBUTES, {"max_message_bytes": 1048576, "content_based_deduplication": False})
    ]
    assert str(changes[0]) == (
        "~ set topic orders.fifo: max message size 1048576 bytes; content-based deduplication off"
    )


# --- the worker's start-up check -----------------------------------------------------------------------------------


class Reader:
    """The look-ups of :func:`find_problems`, answered from one queue's facts (pure logic: no SQS here)."""

    def __init__(self, facts: QueueFacts) -> None:
        self.facts = facts

    def queue(self, name: str) -> QueueFacts | None:
        return self.facts if name == self.facts.name else None

    def names_like(self, prefix: str, limit: int = 100) -> list[str]:
        return [self.facts.name]

    def subscribed(self, topic_arn: str, queue_arn: str) -> bool | None:
        return True


@pytest.mark.parametrize(
    ("fifo_setting", "fifo_queue", "expected"),
    [
        (True, False, "is a standard queue but EVENTBUS_FIFO is on"),
        (False, True, "is a FIFO queue but EVENTBUS_FIFO is off"),
        (True, True, None),
        (False, False, None),
    ],
)
def test_startup_reports_a_queue_whose_fifo_ness_differs_from_the_setting(
    fifo_setting: bool, fifo_queue: bool, expected: str | None
) -> None:
    queue = "orders__queue.fifo" if fifo_setting else "orders__queue"
    settings = EventBusSettings(fifo=fifo_setting, queue_name=queue, topic="orders.fifo" if fifo_setting else "orders")
    facts = QueueFacts(queue, f"https://sqs/{queue}", queue_arn(queue), '{"deadLetterTargetArn": "x"}', fifo_queue)
    found = find_problems(settings, [queue], Reader(facts), "app")
    assert found.unchecked == []
    if expected is None:
        assert found.problems == []
    else:
        (problem,) = found.problems
        assert problem.startswith(f"queue {queue} {expected}: SQS cannot change that")
        assert "eventbus topology apply -A app" in problem
