"""The topology model, pure: derived from the code (limits included), the AWS documents it writes (filter policy, queue
policy merged with the user's statements), ``plan`` on empty, partial and complete deployments, every drift kind.

``simulate`` plays AWS: it makes a plan's changes on a :class:`Deployed` snapshot, so "apply, then plan again" is
checked without a network.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest

from eventbus.core.topology import (
    FILTER_POLICY_MAX_BYTES,
    FILTER_POLICY_MAX_VALUES,
    VISIBILITY_MARGIN,
    Change,
    ChangeKind,
    Deployed,
    DeployedQueue,
    DeployedSubscription,
    DriftKind,
    Topology,
    filter_policy,
    queue_policy,
    topology_of,
)
from eventbus.core.topology_documents import merge_queue_policy, redrive_policy
from eventbus.core.topology_plan import drift, plan
from eventbus.errors import ConfigurationError

REGION_ACCOUNT = "eu-west-2:123456789012"
TAGS = {"eventbus:service": "orders", "eventbus:environment": "test"}
NOTHING = Deployed({}, None, None, ())


def topic_arn(name: str) -> str:
    return f"arn:aws:sns:{REGION_ACCOUNT}:{name}"


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:{REGION_ACCOUNT}:{name}"


def orders(**overrides: Any) -> Topology:
    arguments: dict[str, Any] = {
        "topic": "local_sns",
        "queue": "orders__queue",
        "event_names": ["orderShipped", "orderPlaced", "orderPlaced"],
        "tags": TAGS,
    }
    return topology_of(**(arguments | overrides))


def simulate(topology: Topology, deployed: Deployed, changes: Sequence[Change]) -> Deployed:
    """``deployed`` after AWS made ``changes`` (what the adapter sends, stored as SQS and SNS store it)."""
    topics = dict(deployed.topics)
    queues = {q.name: (dict(q.attributes), dict(q.tags)) for q in (deployed.queue, deployed.dead_letter_queue) if q}
    subscriptions = {s.topic: (s.arn, dict(s.attributes)) for s in deployed.subscriptions}
    for change in changes:
        name, values = change.resource, change.values
        if change.kind is ChangeKind.CREATE_TOPIC:
            topics[name] = topic_arn(name)
        elif change.kind is ChangeKind.CREATE_QUEUE:
            defaults = {"QueueArn": queue_arn(name), "VisibilityTimeout": "30", "MaximumMessageSize": "262144"}
            queues[name] = (defaults | {"MessageRetentionPeriod": "345600"}, {})
        elif change.kind is ChangeKind.SET_QUEUE_ATTRIBUTES:
            attributes = queues[name][0]
            for key, attribute in (
                ("visibility_timeout", "VisibilityTimeout"),
                ("max_message_bytes", "MaximumMessageSize"),
                ("retention", "MessageRetentionPeriod"),
            ):
                if key in values:
                    attributes[attribute] = str(values[key])
            if "redrive" in values:
                redrive = values["redrive"]
                target = queue_arn(redrive["dead_letter_queue"])
                attributes["RedrivePolicy"] = json.dumps(redrive_policy(target, redrive["max_receive_count"]))
            if "policy" in values:
                current = json.loads(attributes["Policy"]) if attributes.get("Policy") else None
                allow = [topics[topic] for topic in values["policy"]["allow"]]
                merged = merge_queue_policy(current, queue_arn(name), allow, values["policy"]["revoke"])
                # SQS gives the document back reformatted: whitespace must not matter
                attributes["Policy"] = json.dumps(merged, indent=2)
        elif change.kind is ChangeKind.TAG_QUEUE:
            queues[name][1].update(values["tags"])
        elif change.kind in (ChangeKind.SUBSCRIBE, ChangeKind.SET_SUBSCRIPTION_ATTRIBUTES):
            arn, attributes = subscriptions.get(name, (f"{topic_arn(name)}:sub", {}))
            if "raw_delivery" in values:
                attributes["RawMessageDelivery"] = str(values["raw_delivery"]).lower()
            if values.get("event_names") is not None:
                attributes["FilterPolicyScope"] = "MessageBody"
                attributes["FilterPolicy"] = json.dumps(filter_policy(values["event_names"]))
            elif "event_names" in values and change.kind is ChangeKind.SET_SUBSCRIPTION_ATTRIBUTES:
                attributes["FilterPolicy"] = "{}"
            subscriptions[name] = (arn, attributes)
        else:
            del subscriptions[name]

    def queue(name: str) -> DeployedQueue | None:
        if name not in queues:
            return None
        attributes, tags = queues[name]
        return DeployedQueue(name, f"https://sqs/{name}", attributes["QueueArn"], attributes, tags)

    found = tuple(DeployedSubscription(topic, arn, attributes) for topic, (arn, attributes) in subscriptions.items())
    return Deployed(topics, queue(topology.queue.name), queue(topology.queue.dead_letter_name), found)


def applied(topology: Topology, deployed: Deployed = NOTHING) -> Deployed:
    return simulate(topology, deployed, plan(topology, deployed))


def with_queue_attributes(deployed: Deployed, **attributes: str) -> Deployed:
    assert deployed.queue is not None
    queue = replace(deployed.queue, attributes={**deployed.queue.attributes, **attributes})
    return replace(deployed, queue=queue)


def with_subscription_attributes(deployed: Deployed, **attributes: str) -> Deployed:
    (subscription,) = deployed.subscriptions
    found = replace(subscription, attributes={**subscription.attributes, **attributes})
    return replace(deployed, subscriptions=(found,))


def kinds(found: Sequence[Any]) -> list[str]:
    return [item.kind.value for item in found]


# --- the topology the code implies ---------------------------------------------------------------------------------


def test_topology_of_names_the_topic_queue_dead_letter_queue_and_sorted_unique_event_names() -> None:
    topology = orders(max_receive_count=3, max_message_bytes=2048)
    assert topology.publishes_to == ("local_sns",)
    assert topology.queue.name == "orders__queue"
    assert topology.queue.dead_letter_name == "orders__queue__dlq"
    assert topology.queue.max_receive_count == 3
    assert topology.queue.max_message_bytes == 2048
    assert topology.queue.visibility_timeout == 30
    assert topology.queue.tags == TAGS
    (subscription,) = topology.subscriptions
    assert (subscription.topic, subscription.raw_delivery) == ("local_sns", False)
    assert subscription.event_names == ("orderPlaced", "orderShipped")
    assert topology.warnings == ()


def test_no_filter_when_the_code_takes_every_event() -> None:
    (subscription,) = orders(event_names=None, raw_delivery=True).subscriptions
    assert subscription.event_names is None
    assert subscription.raw_delivery


def test_no_handler_subscribes_nothing_and_warns() -> None:
    topology = orders(event_names=[])
    assert topology.subscriptions == ()
    assert topology.publishes_to == ("local_sns",)
    (warning,) = topology.warnings
    assert "not subscribed" in warning
    made = [(change.kind, change.resource) for change in plan(topology, NOTHING)]
    assert (ChangeKind.CREATE_QUEUE, "orders__queue") in made  # the queue still takes the service's own tasks
    assert ChangeKind.SUBSCRIBE not in [kind for kind, _ in made]
    assert all("policy" not in change.values for change in plan(topology, NOTHING))


def test_visibility_is_raised_to_the_longest_time_limit_plus_margin_with_a_warning() -> None:
    topology = orders(visibility_timeout=30, handler_time_limits=[None, 20, 90.5])
    assert topology.queue.visibility_timeout == 91 + VISIBILITY_MARGIN
    assert topology.queue.required_visibility_timeout == 91 + VISIBILITY_MARGIN
    (warning,) = topology.warnings
    assert "raised from 30 s to 121 s" in warning


def test_a_long_enough_visibility_setting_is_kept_without_a_warning() -> None:
    topology = orders(visibility_timeout=600, handler_time_limits=[60, None])
    assert topology.queue.visibility_timeout == 600
    assert topology.queue.required_visibility_timeout == 60 + VISIBILITY_MARGIN
    assert topology.warnings == ()
    assert orders(handler_time_limits=[None]).queue.visibility_timeout == 30


def test_visibility_is_capped_at_sqs_maximum_with_a_warning() -> None:
    topology = orders(handler_time_limits=[43_200])
    assert topology.queue.visibility_timeout == 43_200
    assert "may run twice" in topology.warnings[0]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"max_message_bytes": 1023}, "max_message_bytes"),
        ({"max_message_bytes": 1_048_577}, "max_message_bytes"),
        ({"max_receive_count": 0}, "max_receive_count"),
        ({"max_receive_count": 1001}, "max_receive_count"),
        ({"visibility_timeout": 43_201}, "visibility_timeout"),
        ({"queue": "orders.fifo"}, "queue"),
        ({"queue": "q" * 81}, "queue"),
        ({"topic": "has space"}, "topic"),
        ({"queue": "q" * 76}, "dead_letter_suffix"),
    ],
)
def test_settings_outside_aws_limits_are_refused_naming_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError, match=f"^{field}:"):
        orders(**overrides)


def test_message_size_limits_are_inclusive() -> None:
    assert orders(max_message_bytes=1024).queue.max_message_bytes == 1024
    assert orders(max_message_bytes=1_048_576).queue.max_message_bytes == 1_048_576


# --- the documents ---------------------------------------------------------------------------------------------------


def test_filter_policy_is_on_metadata_event_name_sorted_and_unique() -> None:
    assert filter_policy(["b", "a", "b"]) == {"metadata": {"eventName": ["a", "b"]}}


def test_filter_policy_over_the_value_limit_names_count_and_limit() -> None:
    names = [f"event{i}" for i in range(FILTER_POLICY_MAX_VALUES)]
    assert len(filter_policy(names)["metadata"]["eventName"]) == FILTER_POLICY_MAX_VALUES
    with pytest.raises(ConfigurationError) as raised:
        orders(event_names=[*names, "oneMore"])
    text = str(raised.value)
    assert f"{FILTER_POLICY_MAX_VALUES + 1} event names" in text
    assert f"limit of {FILTER_POLICY_MAX_VALUES} values" in text
    assert "EVENTBUS_FILTER_POLICY=false" in text
    assert "event0" not in text


def test_filter_policy_over_the_size_limit_names_size_and_limit() -> None:
    names = [f"{i:03d}" + "x" * 3000 for i in range(100)]
    with pytest.raises(ConfigurationError) as raised:
        filter_policy(names)
    assert f"limit of {FILTER_POLICY_MAX_BYTES} bytes" in str(raised.value)
    assert "100 event names" in str(raised.value)


def test_filter_policy_needs_a_name() -> None:
    with pytest.raises(ConfigurationError, match=r"^event_names:"):
        filter_policy([])


def test_queue_policy_has_one_statement_per_topic_scoped_by_source_arn() -> None:
    queue = queue_arn("orders__queue")
    assert queue_policy(queue, [topic_arn("a"), topic_arn("b"), topic_arn("a")]) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": f"eventbus-{name}",
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn(name)}},
            }
            for name in ("a", "b")
        ],
    }


FOREIGN = {"Sid": "audit", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:root"}, "Action": "sqs:*"}


def test_merge_keeps_foreign_statements_and_replaces_ours_in_place() -> None:
    queue = queue_arn("q")
    stale_ours = {"Sid": "eventbus-a", "Effect": "Deny"}
    current = {"Version": "2012-10-17", "Id": "mine", "Statement": [stale_ours, FOREIGN, stale_ours]}
    merged = merge_queue_policy(current, queue, [topic_arn("a"), topic_arn("b")])
    ours = queue_policy(queue, [topic_arn("a"), topic_arn("b")])["Statement"]
    assert merged == {"Version": "2012-10-17", "Id": "mine", "Statement": [ours[0], FOREIGN, ours[1]]}
    assert merge_queue_policy(merged, queue, [topic_arn("a"), topic_arn("b")]) == merged


def test_merge_revokes_only_the_named_eventbus_statements() -> None:
    queue = queue_arn("q")
    current = queue_policy(queue, [topic_arn("a"), topic_arn("old")])
    current["Statement"].append(FOREIGN)
    merged = merge_queue_policy(current, queue, [topic_arn("a")], revoke=["old", "audit"])
    assert [statement["Sid"] for statement in merged["Statement"]] == ["eventbus-a", "audit"]
    assert merge_queue_policy(None, queue, [])["Statement"] == []
    assert merge_queue_policy({"Statement": FOREIGN}, queue, [])["Statement"] == [FOREIGN]


# --- plan ------------------------------------------------------------------------------------------------------------


def test_plan_on_nothing_creates_everything_in_order() -> None:
    changes = plan(orders(), NOTHING)
    assert [str(change) for change in changes] == [
        "+ create topic local_sns (max message size 1048576 bytes)",
        "+ create queue orders__queue__dlq (dead-letter queue)",
        "~ set queue orders__queue__dlq: maximum message size 1048576 bytes; retention 1209600 s",
        "+ create queue orders__queue",
        "~ set queue orders__queue: visibility timeout 30 s; maximum message size 1048576 bytes; redrive to "
        "orders__queue__dlq after 5 receives; policy allows topics local_sns to send",
        "~ tag queue orders__queue__dlq: eventbus:environment=test, eventbus:service=orders",
        "~ tag queue orders__queue: eventbus:environment=test, eventbus:service=orders",
        "+ subscribe queue orders__queue to topic local_sns (filter: orderPlaced, orderShipped; raw delivery off)",
    ]
    assert changes[-1].values == {
        "queue": "orders__queue",
        "raw_delivery": False,
        "event_names": changes[-1].values["event_names"],
    }
    assert changes[4].values["policy"] == {"allow": ("local_sns",), "revoke": ()}


def test_apply_then_plan_again_changes_nothing_and_reports_no_drift() -> None:
    for topology in (orders(), orders(event_names=None, raw_delivery=True), orders(event_names=[])):
        deployed = applied(topology)
        assert plan(topology, deployed) == []
        assert plan(topology, deployed, prune=True) == []
        assert drift(topology, deployed) == []


def test_plan_on_a_partial_deployment_changes_only_what_is_missing() -> None:
    topology = orders()
    only_topic = Deployed({"local_sns": topic_arn("local_sns")}, None, None, ())
    changes = plan(topology, only_topic)
    assert ChangeKind.CREATE_TOPIC not in [change.kind for change in changes]
    assert plan(topology, simulate(topology, only_topic, changes)) == []
    deployed = with_queue_attributes(applied(topology), VisibilityTimeout="10")
    (change,) = plan(topology, deployed)
    assert (change.kind, change.resource, dict(change.values)) == (
        ChangeKind.SET_QUEUE_ATTRIBUTES,
        "orders__queue",
        {"visibility_timeout": 30},
    )


def test_plan_fixes_subscription_attributes_one_by_one() -> None:
    topology = orders()
    deployed = with_subscription_attributes(applied(topology), RawMessageDelivery="true")
    (change,) = plan(topology, deployed)
    assert change.kind is ChangeKind.SET_SUBSCRIPTION_ATTRIBUTES
    assert change.values == {
        "queue": "orders__queue",
        "raw_delivery": False,
        "subscription_arn": deployed.subscriptions[0].arn,
    }
    assert str(change) == "~ set subscription of queue orders__queue to topic local_sns: raw delivery off"
    unfiltered = orders(event_names=None)
    (change,) = plan(unfiltered, applied(topology))
    assert change.values["event_names"] is None
    assert str(change).endswith("local_sns: no filter: every event")
    assert plan(unfiltered, simulate(unfiltered, applied(topology), [change])) == []


def test_a_foreign_policy_statement_is_kept_and_no_drift() -> None:
    topology = orders()
    deployed = applied(topology)
    assert deployed.queue is not None
    policy = json.loads(deployed.queue.attributes["Policy"])
    policy["Statement"].insert(0, FOREIGN)
    # AWS may hand one-element lists back for scalars: the same policy
    policy["Statement"][1]["Action"] = ["sqs:SendMessage"]
    deployed = with_queue_attributes(deployed, Policy=json.dumps(policy))
    assert plan(topology, deployed) == []
    assert drift(topology, deployed) == []


def test_prune_unsubscribes_topics_the_code_no_longer_uses_then_revokes_their_statements() -> None:
    old = orders(topic="old_topic")
    topology = orders()
    deployed = applied(old)
    deployed = simulate(topology, deployed, plan(topology, deployed))
    assert {s.topic for s in deployed.subscriptions} == {"old_topic", "local_sns"}
    assert plan(topology, deployed) == []  # nothing is deleted unless asked
    changes = plan(topology, deployed, prune=True)
    assert [str(change) for change in changes] == [
        "- unsubscribe queue orders__queue from topic old_topic",
        "~ set queue orders__queue: policy no longer allows topics old_topic",
    ]
    pruned = simulate(topology, deployed, changes)
    assert pruned.queue is not None
    assert [s["Sid"] for s in json.loads(pruned.queue.attributes["Policy"])["Statement"]] == ["eventbus-local_sns"]
    assert plan(topology, pruned, prune=True) == []


def test_tags_are_added_never_removed() -> None:
    topology = orders()
    deployed = applied(topology)
    assert deployed.queue is not None
    extra = replace(deployed.queue, tags={**deployed.queue.tags, "team": "a", "eventbus:service": "other"})
    (change,) = plan(topology, replace(deployed, queue=extra))
    assert (change.kind, dict(change.values)) == (ChangeKind.TAG_QUEUE, {"tags": {"eventbus:service": "orders"}})


# --- drift -----------------------------------------------------------------------------------------------------------


def test_nothing_deployed_drifts_by_missing_resources() -> None:
    assert [str(item) for item in drift(orders(), NOTHING)] == [
        "missing-topic: topic local_sns does not exist",
        "missing-dead-letter-queue: dead-letter queue orders__queue__dlq does not exist",
        "missing-queue: queue orders__queue does not exist",
        "missing-subscription: queue orders__queue is not subscribed to topic local_sns",
    ]


def one_drift(topology: Topology, deployed: Deployed, kind: DriftKind) -> str:
    found = drift(topology, deployed)
    assert kinds(found) == [kind.value], found
    assert plan(topology, deployed), "a drift plan does not fix"
    assert drift(topology, simulate(topology, deployed, plan(topology, deployed, prune=True))) == []
    return found[0].detail


def test_filter_policy_missing_and_extra_names() -> None:
    topology = orders()
    deployed = with_subscription_attributes(
        applied(topology), FilterPolicy=json.dumps(filter_policy(["orderPlaced", "orderCancelled"]))
    )
    detail = one_drift(topology, deployed, DriftKind.FILTER_POLICY)
    assert "missing event names (SNS drops them): orderShipped" in detail
    assert "extra event names (delivered, no handler): orderCancelled" in detail
    assert "subscription of queue orders__queue to topic local_sns" in detail


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"FilterPolicy": ""}, "has no filter policy: SNS delivers every event"),
        ({"FilterPolicy": "{}"}, "has no filter policy"),
        ({"FilterPolicyScope": "MessageAttributes"}, "filters on MessageAttributes, the code on MessageBody"),
        ({"FilterPolicy": '{"eventName": ["orderPlaced"]}'}, "other than the code's"),
    ],
)
def test_filter_policy_absent_or_of_another_shape(attributes: dict[str, str], expected: str) -> None:
    topology = orders()
    detail = one_drift(topology, with_subscription_attributes(applied(topology), **attributes), DriftKind.FILTER_POLICY)
    assert expected in detail


def test_a_filter_where_the_code_takes_every_event() -> None:
    detail = one_drift(orders(event_names=None), applied(orders()), DriftKind.FILTER_POLICY)
    assert "the code takes every event" in detail


def test_raw_delivery_found_versus_chosen() -> None:
    topology = orders()
    deployed = with_subscription_attributes(applied(topology), RawMessageDelivery="true")
    assert "raw delivery on, the code chooses off" in one_drift(topology, deployed, DriftKind.RAW_DELIVERY)


def test_redrive_missing_other_target_or_count() -> None:
    topology = orders()
    deployed = applied(topology)
    missing = one_drift(topology, with_queue_attributes(deployed, RedrivePolicy=""), DriftKind.REDRIVE)
    assert "queue orders__queue has no redrive policy" in missing
    elsewhere = json.dumps(redrive_policy(queue_arn("other"), 5))
    other = one_drift(topology, with_queue_attributes(deployed, RedrivePolicy=elsewhere), DriftKind.REDRIVE)
    assert f"redrives to {queue_arn('other')}, not to {queue_arn('orders__queue__dlq')}" in other
    count = json.dumps({"deadLetterTargetArn": queue_arn("orders__queue__dlq"), "maxReceiveCount": "9"})
    counted = one_drift(topology, with_queue_attributes(deployed, RedrivePolicy=count), DriftKind.REDRIVE)
    assert "after 9 receives, the code after 5" in counted


def test_visibility_shorter_than_a_handler_needs_or_different() -> None:
    topology = orders(handler_time_limits=[60])
    deployed = applied(topology)
    short = one_drift(topology, with_queue_attributes(deployed, VisibilityTimeout="45"), DriftKind.VISIBILITY)
    assert "visibility timeout of 45 s, shorter than the longest handler time limit plus 30 s (90 s)" in short
    long = one_drift(topology, with_queue_attributes(deployed, VisibilityTimeout="300"), DriftKind.VISIBILITY)
    assert "300 s, the code sets 90 s" in long


def test_max_message_size_of_queue_and_dead_letter_queue() -> None:
    topology = orders()
    deployed = with_queue_attributes(applied(topology), MaximumMessageSize="262144")
    detail = one_drift(topology, deployed, DriftKind.MAX_MESSAGE_SIZE)
    assert "queue orders__queue accepts messages up to 262144 bytes, the code sets 1048576" in detail


def test_queue_policy_missing_the_topic_or_different() -> None:
    topology = orders()
    deployed = applied(topology)
    foreign_only = json.dumps({"Version": "2012-10-17", "Statement": [FOREIGN]})
    missing = one_drift(topology, with_queue_attributes(deployed, Policy=foreign_only), DriftKind.QUEUE_POLICY)
    assert "does not let topic local_sns send to it (no statement eventbus-local_sns)" in missing
    assert deployed.queue is not None
    policy = json.loads(deployed.queue.attributes["Policy"])
    policy["Statement"][0]["Condition"] = {"ArnEquals": {"aws:SourceArn": topic_arn("elsewhere")}}
    other = one_drift(topology, with_queue_attributes(deployed, Policy=json.dumps(policy)), DriftKind.QUEUE_POLICY)
    assert "statement eventbus-local_sns for topic local_sns differs from the code's in Condition" in other


def test_extra_subscription_to_a_topic_the_code_no_longer_uses() -> None:
    topology = orders()
    deployed = applied(orders(topic="old_topic"))
    deployed = simulate(topology, deployed, plan(topology, deployed))
    (found,) = drift(topology, deployed)
    assert found.kind is DriftKind.EXTRA_SUBSCRIPTION
    assert "queue orders__queue is subscribed to topic old_topic, which the code no longer uses" in found.detail
    assert drift(topology, simulate(topology, deployed, plan(topology, deployed, prune=True))) == []


def test_drift_names_resources_of_a_queue_whose_dead_letter_queue_is_gone() -> None:
    topology = orders()
    deployed = replace(applied(topology), dead_letter_queue=None)
    assert kinds(drift(topology, deployed)) == ["missing-dead-letter-queue"]
    changes = plan(topology, deployed)
    assert [change.kind for change in changes][:2] == [ChangeKind.CREATE_QUEUE, ChangeKind.SET_QUEUE_ATTRIBUTES]
    assert drift(topology, simulate(topology, deployed, changes)) == []


def test_change_lines_for_every_kind() -> None:
    values: Mapping[str, Any] = {"queue": "q", "subscription_arn": "arn:s"}
    assert str(Change(ChangeKind.UNSUBSCRIBE, "t", values)) == "- unsubscribe queue q from topic t"
    subscribe = Change(ChangeKind.SUBSCRIBE, "t", {"queue": "q", "raw_delivery": True, "event_names": None})
    assert str(subscribe) == "+ subscribe queue q to topic t (no filter: every event; raw delivery on)"
    assert str(Change(ChangeKind.CREATE_QUEUE, "q", {"dead_letter": False})) == "+ create queue q"


def test_a_topic_left_at_snss_default_size_is_raised_to_the_codes_limit() -> None:
    topology = orders()
    arn = topic_arn("local_sns")
    small = Deployed({"local_sns": arn}, None, None, (), {"local_sns": {"MaximumMessageSize": "262144"}})
    [size_drift] = [d for d in drift(topology, small) if d.kind is DriftKind.MAX_MESSAGE_SIZE]
    assert "topic local_sns takes messages up to 262144 bytes" in size_drift.detail
    raise_size = [c for c in plan(topology, small) if c.kind is ChangeKind.SET_TOPIC_ATTRIBUTES]
    assert [str(c) for c in raise_size] == ["~ set topic local_sns: max message size 1048576 bytes"]
    raised = Deployed({"local_sns": arn}, None, None, (), {"local_sns": {"MaximumMessageSize": "1048576"}})
    assert not [c for c in plan(topology, raised) if c.kind is ChangeKind.SET_TOPIC_ATTRIBUTES]
    assert not [d for d in drift(topology, raised) if d.kind is DriftKind.MAX_MESSAGE_SIZE]
    # a store that does not report the attribute (the emulators) is not judged on it
    unreported = Deployed({"local_sns": arn}, None, None, ())
    assert not [c for c in plan(topology, unreported) if c.kind is ChangeKind.SET_TOPIC_ATTRIBUTES]
    # at SNS's default limit nothing needs raising
    assert not [c for c in plan(orders(max_message_bytes=262_144), small) if c.kind is ChangeKind.SET_TOPIC_ATTRIBUTES]
