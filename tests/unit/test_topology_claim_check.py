"""The claim-check side of the topology, pure: the bucket and its expiry rule in the topology the code implies, in
``plan`` and in ``drift``; the filter policy on the ``eventName`` message attribute when claim-check is on (a
pointer body has no ``metadata.eventName``), on the body otherwise, and a deployment in the other scope found and
changed. Deployments are :class:`Deployed` snapshots written as AWS reports them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from eventbus.core.topology import (
    EXPIRY_RULE_ID,
    FILTER_POLICY_MAX_BYTES,
    FILTER_POLICY_MAX_VALUES,
    ChangeKind,
    Deployed,
    DeployedBucket,
    DeployedQueue,
    DeployedSubscription,
    DriftKind,
    FilterScope,
    PayloadBucketSpec,
    Topology,
    filter_policy,
    queue_policy,
    topology_of,
)
from eventbus.core.topology_documents import expiry_rule, merge_lifecycle_rules, redrive_policy
from eventbus.core.topology_plan import drift, plan
from eventbus.errors import ConfigurationError

ACCOUNT = "eu-west-2:123456789012"
TOPIC_ARN = f"arn:aws:sns:{ACCOUNT}:local_sns"
SUBSCRIPTION_ARN = f"{TOPIC_ARN}:sub-1"
BUCKET = "orders-large-events"
NAMES = ("orderPlaced", "orderShipped")
USER_RULE = {"ID": "archive", "Status": "Enabled", "Filter": {"Prefix": "reports/"}, "Expiration": {"Days": 400}}


def orders(**overrides: Any) -> Topology:
    arguments: dict[str, Any] = {
        "topic": "local_sns",
        "queue": "orders__queue",
        "event_names": list(NAMES),
        "payload_bucket": BUCKET,
        "payload_expiry_days": 15,
    }
    return topology_of(**(arguments | overrides))


def _queue(name: str, **attributes: str) -> DeployedQueue:
    arn = f"arn:aws:sqs:{ACCOUNT}:{name}"
    return DeployedQueue(name, f"https://sqs/{name}", arn, {"QueueArn": arn, **attributes})


def deployed(
    topology: Topology,
    *,
    filter_attributes: dict[str, str] | None,
    bucket: DeployedBucket | None,
) -> Deployed:
    """Everything of ``topology`` deployed as the code wants it, except the subscription's filter attributes and the
    bucket, which the test gives."""
    spec = topology.queue
    dead_letter = _queue(
        spec.dead_letter_name,
        MaximumMessageSize=str(spec.max_message_bytes),
        MessageRetentionPeriod=str(spec.dead_letter_retention),
    )
    queue_arn = f"arn:aws:sqs:{ACCOUNT}:{spec.name}"
    queue = _queue(
        spec.name,
        VisibilityTimeout=str(spec.visibility_timeout),
        MaximumMessageSize=str(spec.max_message_bytes),
        RedrivePolicy=json.dumps(redrive_policy(dead_letter.arn, spec.max_receive_count)),
        Policy=json.dumps(queue_policy(queue_arn, [TOPIC_ARN])),
    )
    attributes = {"RawMessageDelivery": "false", **(filter_attributes or {})}
    subscription = DeployedSubscription("local_sns", SUBSCRIPTION_ARN, attributes)
    topic_attributes = {"local_sns": {"MaximumMessageSize": str(spec.max_message_bytes)}}
    return Deployed({"local_sns": TOPIC_ARN}, queue, dead_letter, (subscription,), topic_attributes, bucket)


def body_filter(names: tuple[str, ...] = NAMES) -> dict[str, str]:
    return {"FilterPolicyScope": "MessageBody", "FilterPolicy": json.dumps(filter_policy(names))}


def attribute_filter(names: tuple[str, ...] = NAMES) -> dict[str, str]:
    policy = json.dumps(filter_policy(names, FilterScope.ATTRIBUTES))
    return {"FilterPolicyScope": "MessageAttributes", "FilterPolicy": policy}


def as_s3_returns(days: int = 15) -> DeployedBucket:
    """The bucket with eventbus's rule as S3 gives it back (key order and all), next to a rule of the user's."""
    ours = {"Expiration": {"Days": days}, "ID": EXPIRY_RULE_ID, "Filter": {"Prefix": ""}, "Status": "Enabled"}
    return DeployedBucket(BUCKET, (USER_RULE, ours))


# --- the topology the code implies ---------------------------------------------------------------------------------


def test_the_bucket_puts_the_bucket_in_the_topology_and_the_filter_on_the_event_name_attribute() -> None:
    topology = orders(payload_expiry_days=20)
    assert topology.payload_bucket == PayloadBucketSpec(BUCKET, 20)
    (subscription,) = topology.subscriptions
    assert (subscription.event_names, subscription.filter_scope) == (NAMES, FilterScope.ATTRIBUTES)
    assert topology.warnings == ()


def test_without_the_bucket_nothing_changes() -> None:
    topology = orders(payload_bucket=None)
    assert topology.payload_bucket is None
    assert topology.subscriptions[0].filter_scope is FilterScope.BODY
    change = plan(topology, Deployed({}, None, None, ()))[-1]
    assert change.kind is ChangeKind.SUBSCRIBE
    assert "filter_scope" not in change.values  # the values a body filter had before claim-check
    assert str(change).endswith("(filter: orderPlaced, orderShipped; raw delivery off)")


def test_filter_policy_in_each_scope() -> None:
    assert filter_policy(["b", "a", "b"], FilterScope.ATTRIBUTES) == {"eventName": ["a", "b"]}
    assert filter_policy(["b", "a"]) == {"metadata": {"eventName": ["a", "b"]}}


def test_the_attribute_filter_keeps_sns_limits() -> None:
    too_many = [f"event{n}" for n in range(FILTER_POLICY_MAX_VALUES + 1)]
    with pytest.raises(ConfigurationError, match=f"{FILTER_POLICY_MAX_VALUES + 1} event names"):
        filter_policy(too_many, FilterScope.ATTRIBUTES)
    with pytest.raises(ConfigurationError, match="event names, over SNS's limit"):
        orders(event_names=too_many)
    long_names = [f"{n:03d}" + "x" * (FILTER_POLICY_MAX_BYTES // 100) for n in range(100)]
    with pytest.raises(ConfigurationError, match=f"over SNS's limit of {FILTER_POLICY_MAX_BYTES} bytes"):
        filter_policy(long_names, FilterScope.ATTRIBUTES)
    with pytest.raises(ConfigurationError, match="at least one event name"):
        filter_policy([], FilterScope.ATTRIBUTES)


@pytest.mark.parametrize("name", ["Orders", "ab", "-orders", "orders..large", "orders_large", "o" * 64])
def test_an_invalid_bucket_name_is_refused(name: str) -> None:
    with pytest.raises(ConfigurationError, match="large_payload_bucket: not a valid S3 bucket name"):
        orders(payload_bucket=name)


def test_an_expiry_within_the_dead_letter_retention_is_warned_about() -> None:
    (warning,) = orders(payload_expiry_days=14).warnings
    assert "expire after 14 days" in warning
    assert "dead-lettered large event may lose its body" in warning
    with pytest.raises(ConfigurationError, match="large_payload_expiry_days"):
        orders(payload_expiry_days=0)


# --- the bucket and its rule ---------------------------------------------------------------------------------------


def test_plan_creates_the_bucket_and_its_rule_first() -> None:
    changes = plan(orders(), Deployed({}, None, None, ()))
    assert [(change.kind, change.resource, dict(change.values)) for change in changes[:2]] == [
        (ChangeKind.CREATE_BUCKET, BUCKET, {}),
        (ChangeKind.SET_BUCKET_LIFECYCLE, BUCKET, {"expiry_days": 15}),
    ]
    assert [str(change) for change in changes[:2]] == [
        f"+ create bucket {BUCKET} (claim-checked events)",
        f"~ set bucket {BUCKET} lifecycle: rule {EXPIRY_RULE_ID} expires objects after 15 days",
    ]
    assert str(changes[-1]) == (
        "+ subscribe queue orders__queue to topic local_sns "
        "(filter on the eventName attribute: orderPlaced, orderShipped; raw delivery off)"
    )
    assert changes[-1].values["filter_scope"] is FilterScope.ATTRIBUTES


def test_a_deployment_as_the_code_wants_it_has_no_drift_and_no_plan() -> None:
    topology = orders()
    found = deployed(topology, filter_attributes=attribute_filter(), bucket=as_s3_returns())
    assert (plan(topology, found), drift(topology, found)) == ([], [])


def test_a_missing_bucket() -> None:
    topology = orders()
    found = deployed(topology, filter_attributes=attribute_filter(), bucket=None)
    (item,) = drift(topology, found)
    assert item.kind is DriftKind.MISSING_BUCKET
    assert item.detail.startswith(f"bucket {BUCKET} does not exist")
    assert [change.kind for change in plan(topology, found)] == [
        ChangeKind.CREATE_BUCKET,
        ChangeKind.SET_BUCKET_LIFECYCLE,
    ]


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ((), f"has no lifecycle rule {EXPIRY_RULE_ID}"),
        ((USER_RULE,), f"has no lifecycle rule {EXPIRY_RULE_ID}"),
        ((expiry_rule(30),), "expires objects after 30 days, the code after 15"),
        ((expiry_rule(15) | {"Status": "Disabled"},), f"rule {EXPIRY_RULE_ID} is disabled"),
        ((expiry_rule(15) | {"Filter": {"Prefix": "tmp/"}},), "applies to part of the bucket only"),
        ((expiry_rule(15) | {"Filter": {"Tag": {"Key": "a", "Value": "b"}}},), "applies to part of the bucket only"),
        ({k: v for k, v in expiry_rule(15).items() if k != "Expiration"}, "expires objects after None days"),
    ],
)
def test_a_missing_or_different_rule_is_drift_and_is_rewritten(rules: Any, expected: str) -> None:
    topology = orders()
    rules = (rules,) if isinstance(rules, dict) else rules
    found = deployed(topology, filter_attributes=attribute_filter(), bucket=DeployedBucket(BUCKET, rules))
    (item,) = drift(topology, found)
    assert item.kind is DriftKind.BUCKET_LIFECYCLE
    assert expected in item.detail
    (change,) = plan(topology, found)
    assert (change.kind, change.resource, dict(change.values)) == (
        ChangeKind.SET_BUCKET_LIFECYCLE,
        BUCKET,
        {"expiry_days": 15},
    )


@pytest.mark.parametrize(
    "rule",
    [
        {"ID": EXPIRY_RULE_ID, "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 15}},
        {"ID": EXPIRY_RULE_ID, "Status": "Enabled", "Prefix": "", "Expiration": {"Days": 15}},
    ],
)
def test_other_spellings_of_a_whole_bucket_rule_are_no_drift(rule: dict[str, Any]) -> None:
    topology = orders()
    found = deployed(topology, filter_attributes=attribute_filter(), bucket=DeployedBucket(BUCKET, (rule,)))
    assert (plan(topology, found), drift(topology, found)) == ([], [])


def test_the_merged_lifecycle_keeps_the_users_rules_and_replaces_ours() -> None:
    merged = merge_lifecycle_rules([USER_RULE, expiry_rule(30)], 15)
    assert merged == [USER_RULE, expiry_rule(15)]
    assert merge_lifecycle_rules([], 15) == [
        {"ID": EXPIRY_RULE_ID, "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 15}}
    ]


def test_without_the_bucket_a_deployed_bucket_is_not_judged() -> None:
    topology = orders(payload_bucket=None)
    found = deployed(topology, filter_attributes=body_filter(), bucket=None)
    assert (plan(topology, found), drift(topology, found)) == ([], [])


# --- the filter scope ----------------------------------------------------------------------------------------------


def test_a_body_filter_where_the_code_wants_the_attribute_is_drift_and_is_changed() -> None:
    topology = orders()
    found = deployed(topology, filter_attributes=body_filter(), bucket=as_s3_returns())
    (item,) = drift(topology, found)
    assert item.kind is DriftKind.FILTER_POLICY
    assert item.detail == (
        "subscription of queue orders__queue to topic local_sns filters on MessageBody, the code on MessageAttributes "
        "(the eventName message attribute): a claim-checked event's pointer has no metadata.eventName, SNS would "
        "drop it"
    )
    (change,) = plan(topology, found)
    assert change.kind is ChangeKind.SET_SUBSCRIPTION_ATTRIBUTES
    assert dict(change.values) == {
        "queue": "orders__queue",
        "event_names": NAMES,
        "filter_scope": FilterScope.ATTRIBUTES,
        "subscription_arn": SUBSCRIPTION_ARN,
    }
    assert str(change) == (
        "~ set subscription of queue orders__queue to topic local_sns: "
        "filter on the eventName attribute: orderPlaced, orderShipped"
    )


def test_an_attribute_filter_where_the_code_wants_the_body_is_drift_and_is_changed_back() -> None:
    topology = orders(payload_bucket=None)
    found = deployed(topology, filter_attributes=attribute_filter(), bucket=None)
    (item,) = drift(topology, found)
    assert item.kind is DriftKind.FILTER_POLICY
    assert "filters on MessageAttributes, the code on MessageBody (metadata.eventName)" in item.detail
    (change,) = plan(topology, found)
    assert dict(change.values) == {"queue": "orders__queue", "event_names": NAMES, "subscription_arn": SUBSCRIPTION_ARN}


def test_no_scope_set_is_snss_default_the_attributes() -> None:
    topology = orders()
    unscoped = {"FilterPolicy": json.dumps(filter_policy(NAMES, FilterScope.ATTRIBUTES))}
    found = deployed(topology, filter_attributes=unscoped, bucket=as_s3_returns())
    assert (plan(topology, found), drift(topology, found)) == ([], [])


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (("orderPlaced",), "missing event names (SNS drops them): orderShipped"),
        ((*NAMES, "orderLost"), "extra event names (delivered, no handler): orderLost"),
    ],
)
def test_attribute_filter_names_are_compared(names: tuple[str, ...], expected: str) -> None:
    topology = orders()
    found = deployed(topology, filter_attributes=attribute_filter(names), bucket=as_s3_returns())
    (item,) = drift(topology, found)
    assert (item.kind, item.detail.endswith(expected)) == (DriftKind.FILTER_POLICY, True)
    (change,) = plan(topology, found)
    assert (change.values["event_names"], change.values["filter_scope"]) == (NAMES, FilterScope.ATTRIBUTES)


def test_a_body_shaped_policy_in_attribute_scope_is_not_the_codes() -> None:
    topology = orders()
    nested = {"FilterPolicyScope": "MessageAttributes", "FilterPolicy": json.dumps(filter_policy(NAMES))}
    found = deployed(topology, filter_attributes=nested, bucket=as_s3_returns())
    (item,) = drift(topology, found)
    assert item.detail.endswith("has a filter policy other than the code's (on the eventName message attribute only)")


def test_every_event_with_the_bucket_has_no_filter_and_no_scope() -> None:
    topology = orders(event_names=None)
    change = plan(topology, Deployed({}, None, None, ()))[-1]
    assert dict(change.values) == {"queue": "orders__queue", "raw_delivery": False, "event_names": None}
    found = deployed(topology, filter_attributes={"FilterPolicy": "{}"}, bucket=as_s3_returns())
    assert (plan(topology, found), drift(topology, found)) == ([], [])
