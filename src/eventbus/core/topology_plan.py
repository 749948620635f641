"""Deployed against the code: :func:`plan` (the changes that make the deployment match) and :func:`drift` (the
differences ``check`` reports).

Pure, like :mod:`eventbus.core.topology`. Each comparison returns what differs (the detail ``check`` reports) or
``None``; ``plan`` changes exactly what differs, so after an apply both are empty. ``plan`` also sets what ``check``
does not report: tags, the dead-letter queue's retention and, with ``prune``, eventbus's queue-policy statements for
topics the queue no longer subscribes to.

FIFO-ness (``FifoQueue``, ``FifoTopic``) is set at creation only: a deployed queue or topic whose FIFO-ness differs
from the code's is drift, and ``plan`` refuses (:class:`~eventbus.errors.ConfigurationError` naming it) rather than
list changes that cannot make it match; content-based deduplication of a FIFO one is reported and switched off.

The claim-check bucket comes first (a publisher may store bodies as soon as the topic exists); its lifecycle rule is
judged by :mod:`eventbus.core.topology_bucket`. A filter policy is judged in its scope: the code's
:class:`~eventbus.core.topology.FilterScope` against the deployed ``FilterPolicyScope``, then the event names in the
shape that scope takes. The JSON documents are read and compared with :mod:`eventbus.core.topology_documents`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventbus.core.topology import (
    SID_PREFIX,
    SNS_DEFAULT_MAX_MESSAGE_BYTES,
    VISIBILITY_MARGIN,
    Change,
    ChangeKind,
    Deployed,
    DeployedQueue,
    DeployedSubscription,
    Drift,
    DriftKind,
    FilterScope,
    QueueSpec,
    SubscriptionSpec,
    Topology,
    queue_policy,
    topic_name_of,
)
from eventbus.core.topology_bucket import bucket_problem, lifecycle_problem
from eventbus.core.topology_documents import (
    canonical,
    deduplication_problem,
    document_of,
    fifo_drift,
    filter_policy_problem,
    merge_queue_policy,
    statements_of,
)
from eventbus.errors import ConfigurationError

__all__ = ["drift", "plan"]


def plan(topology: Topology, deployed: Deployed, *, prune: bool = False) -> list[Change]:
    """The changes that make ``deployed`` match ``topology`` (see :class:`~eventbus.core.topology.Change`); with
    ``prune``, also the subscriptions and queue-policy statements for topics the code no longer uses removed.

    Raises:
        ConfigurationError: a queue or topic is FIFO where the code's is standard, or the other way round (AWS cannot
            change that: it must be recreated); the text names each.
    """
    refused = _fifo_drift(topology, deployed)[0]
    if refused:
        raise ConfigurationError(f"plan cannot make the deployment match the code: {'; '.join(refused)}")
    spec = topology.queue
    changes = _bucket_changes(topology, deployed)
    changes += _topic_changes(topology, deployed)
    dead_letter = deployed.dead_letter_queue
    changes += _queue_changes(spec, dead_letter, _dead_letter_values(spec, dead_letter), True)
    changes += _queue_changes(spec, deployed.queue, _queue_values(topology, deployed), False)
    for name, found in ((spec.dead_letter_name, dead_letter), (spec.name, deployed.queue)):
        tags = {key: value for key, value in spec.tags.items() if found is None or found.tags.get(key) != value}
        if tags:
            changes.append(Change(ChangeKind.TAG_QUEUE, name, {"tags": tags}))
    subscribed = _by_topic(deployed)
    for subscription in topology.subscriptions:
        found_subscription = subscribed.get(subscription.topic)
        values: dict[str, Any] = {"queue": spec.name}
        if found_subscription is None:
            values |= {"raw_delivery": subscription.raw_delivery} | _filter_values(subscription)
            changes.append(Change(ChangeKind.SUBSCRIBE, subscription.topic, values))
            continue
        if _raw_delivery_problem(spec, subscription, found_subscription.attributes):
            values["raw_delivery"] = subscription.raw_delivery
        if _filter_problem(spec, subscription, found_subscription.attributes):
            values |= _filter_values(subscription)
        if len(values) > 1:
            values["subscription_arn"] = found_subscription.arn
            changes.append(Change(ChangeKind.SET_SUBSCRIPTION_ATTRIBUTES, subscription.topic, values))
    if prune:
        for extra in _extra_subscriptions(topology, deployed):
            values = {"queue": spec.name, "subscription_arn": extra.arn}
            changes.append(Change(ChangeKind.UNSUBSCRIBE, extra.topic, values))
        # after the unsubscribes: a topic still subscribed must keep its permission until then
        stale = _stale_policy_topics(topology, deployed.queue)
        if stale:
            policy = {"allow": (), "revoke": stale}
            changes.append(Change(ChangeKind.SET_QUEUE_ATTRIBUTES, spec.name, {"policy": policy}))
    return changes


def drift(topology: Topology, deployed: Deployed) -> list[Drift]:
    """The differences between ``deployed`` and ``topology`` that ``check`` reports."""
    spec = topology.queue
    found = _bucket_drift(topology, deployed)
    found += [
        Drift(DriftKind.MISSING_TOPIC, f"topic {name} does not exist")
        for name in _topics(topology)
        if name not in deployed.topics
    ]
    recreate, deduplicating = _fifo_drift(topology, deployed)
    found += [Drift(DriftKind.FIFO, problem) for problem in recreate]
    found += [Drift(DriftKind.CONTENT_BASED_DEDUPLICATION, problem) for _, _, problem in deduplicating]
    found += [
        Drift(
            DriftKind.MAX_MESSAGE_SIZE,
            f"topic {name} takes messages up to {size} bytes, the code sends up to {spec.max_message_bytes} "
            "(EVENTBUS_MAX_MESSAGE_BYTES): SNS would refuse the larger ones",
        )
        for name, size in _small_topics(topology, deployed)
    ]
    queue, dead_letter = deployed.queue, deployed.dead_letter_queue
    if dead_letter is None:
        found.append(
            Drift(DriftKind.MISSING_DEAD_LETTER_QUEUE, f"dead-letter queue {spec.dead_letter_name} does not exist")
        )
    if queue is None:
        found.append(Drift(DriftKind.MISSING_QUEUE, f"queue {spec.name} does not exist"))
    else:
        for kind, problem in (
            (DriftKind.REDRIVE, _redrive_problem(spec, queue.attributes, dead_letter)),
            (DriftKind.VISIBILITY, _visibility_problem(spec, queue.attributes)),
            (DriftKind.MAX_MESSAGE_SIZE, _size_problem(spec.name, spec.max_message_bytes, queue.attributes)),
        ):
            if problem:
                found.append(Drift(kind, problem))
    if dead_letter is not None:
        problem = _size_problem(spec.dead_letter_name, spec.max_message_bytes, dead_letter.attributes)
        if problem:
            found.append(Drift(DriftKind.MAX_MESSAGE_SIZE, problem))
    if queue is not None:
        found += [Drift(DriftKind.QUEUE_POLICY, problem) for problem in _policy_problems(topology, deployed, queue)]
    subscribed = _by_topic(deployed)
    for subscription in topology.subscriptions:
        found_subscription = subscribed.get(subscription.topic)
        if found_subscription is None:
            detail = f"queue {spec.name} is not subscribed to topic {subscription.topic}"
            found.append(Drift(DriftKind.MISSING_SUBSCRIPTION, detail))
            continue
        for kind, problem in (
            (DriftKind.RAW_DELIVERY, _raw_delivery_problem(spec, subscription, found_subscription.attributes)),
            (DriftKind.FILTER_POLICY, _filter_problem(spec, subscription, found_subscription.attributes)),
        ):
            if problem:
                found.append(Drift(kind, problem))
    for extra in _extra_subscriptions(topology, deployed):
        detail = (
            f"queue {spec.name} is subscribed to topic {extra.topic}, which the code no longer uses "
            "(apply --prune unsubscribes it)"
        )
        found.append(Drift(DriftKind.EXTRA_SUBSCRIPTION, detail))
    return found


def _bucket_changes(topology: Topology, deployed: Deployed) -> list[Change]:
    """Create the claim-check bucket if missing; write the expiry rule if it is missing or does something else."""
    bucket, found = topology.payload_bucket, deployed.payload_bucket
    if bucket is None:
        return []
    changes = [] if found is not None else [Change(ChangeKind.CREATE_BUCKET, bucket.name)]
    if found is None or lifecycle_problem(bucket, found.lifecycle_rules):
        changes.append(Change(ChangeKind.SET_BUCKET_LIFECYCLE, bucket.name, {"expiry_days": bucket.expiry_days}))
    return changes


def _bucket_drift(topology: Topology, deployed: Deployed) -> list[Drift]:
    bucket, found = topology.payload_bucket, deployed.payload_bucket
    if bucket is None:
        return []
    if found is None:
        return [Drift(DriftKind.MISSING_BUCKET, str(bucket_problem(bucket, found)))]
    problem = lifecycle_problem(bucket, found.lifecycle_rules)
    return [Drift(DriftKind.BUCKET_LIFECYCLE, problem)] if problem else []


def _topic_changes(topology: Topology, deployed: Deployed) -> list[Change]:
    """Create the missing topics; raise the ``MaximumMessageSize`` of those that would refuse the code's events, and
    switch off content-based deduplication of FIFO ones."""
    wanted = topology.queue.max_message_bytes
    size = {"max_message_bytes": wanted} if wanted > SNS_DEFAULT_MAX_MESSAGE_BYTES else {}
    created = size | ({"fifo": True} if topology.queue.fifo else {})
    changes = [
        Change(ChangeKind.CREATE_TOPIC, name, created) for name in _topics(topology) if name not in deployed.topics
    ]
    values = {name: {"max_message_bytes": wanted} for name, _ in _small_topics(topology, deployed)}
    for name in (name for what, name, _ in _fifo_drift(topology, deployed)[1] if what == "topic"):
        values.setdefault(name, {})["content_based_deduplication"] = False
    return changes + [Change(ChangeKind.SET_TOPIC_ATTRIBUTES, name, found) for name, found in values.items()]


def _fifo_drift(topology: Topology, deployed: Deployed) -> tuple[list[str], list[tuple[str, str, str]]]:
    """:func:`fifo_drift` of the topology's topics (those whose attributes were read) and queues found."""
    read = deployed.topic_attributes
    found = [("topic", name, read[name]) for name in _topics(topology) if name in read]
    queues = (("dead-letter queue", deployed.dead_letter_queue), ("queue", deployed.queue))
    found += [(what, queue.name, queue.attributes) for what, queue in queues if queue is not None]
    return fifo_drift(topology.queue.fifo, found)


def _small_topics(topology: Topology, deployed: Deployed) -> list[tuple[str, int]]:
    """Existing topics whose reported ``MaximumMessageSize`` is below the code's limit (unreported: not judged)."""
    small = []
    for name in _topics(topology):
        size = _int(deployed.topic_attributes.get(name, {}).get("MaximumMessageSize"))
        if name in deployed.topics and size is not None and size < topology.queue.max_message_bytes:
            small.append((name, size))
    return small


def _topics(topology: Topology) -> list[str]:
    return list(dict.fromkeys([*topology.publishes_to, *(s.topic for s in topology.subscriptions)]))


def _by_topic(deployed: Deployed) -> dict[str, DeployedSubscription]:
    return {subscription.topic: subscription for subscription in deployed.subscriptions}


def _extra_subscriptions(topology: Topology, deployed: Deployed) -> list[DeployedSubscription]:
    wanted = {subscription.topic for subscription in topology.subscriptions}
    return [subscription for subscription in deployed.subscriptions if subscription.topic not in wanted]


def _queue_changes(
    spec: QueueSpec, found: DeployedQueue | None, values: dict[str, Any], dead_letter: bool
) -> list[Change]:
    name = spec.dead_letter_name if dead_letter else spec.name
    created = {"dead_letter": dead_letter} | ({"fifo": True} if spec.fifo else {})
    changes = [] if found else [Change(ChangeKind.CREATE_QUEUE, name, created)]
    return changes + ([Change(ChangeKind.SET_QUEUE_ATTRIBUTES, name, values)] if values else [])


def _dead_letter_values(spec: QueueSpec, found: DeployedQueue | None) -> dict[str, Any]:
    attributes = found.attributes if found else {}
    values: dict[str, Any] = {}
    if found is None or _size_problem(spec.dead_letter_name, spec.max_message_bytes, attributes):
        values["max_message_bytes"] = spec.max_message_bytes
    if _int(attributes.get("MessageRetentionPeriod")) != spec.dead_letter_retention:
        values["retention"] = spec.dead_letter_retention
    if spec.fifo and deduplication_problem("dead-letter queue", spec.dead_letter_name, attributes):
        values["content_based_deduplication"] = False
    return values


def _queue_values(topology: Topology, deployed: Deployed) -> dict[str, Any]:
    spec, found = topology.queue, deployed.queue
    attributes = found.attributes if found else {}
    values: dict[str, Any] = {}
    if found is None or _visibility_problem(spec, attributes):
        values["visibility_timeout"] = spec.visibility_timeout
    if found is None or _size_problem(spec.name, spec.max_message_bytes, attributes):
        values["max_message_bytes"] = spec.max_message_bytes
    if spec.fifo and deduplication_problem("queue", spec.name, attributes):
        values["content_based_deduplication"] = False
    if found is None or _redrive_problem(spec, attributes, deployed.dead_letter_queue):
        values["redrive"] = {"dead_letter_queue": spec.dead_letter_name, "max_receive_count": spec.max_receive_count}
    topics = tuple(subscription.topic for subscription in topology.subscriptions)
    arns = [deployed.topics.get(topic) for topic in topics]
    if topics and (found is None or None in arns or _policy_outdated(found, [arn for arn in arns if arn])):
        # a topic not created yet has no ARN: the adapter writes its statement once it has one
        values["policy"] = {"allow": topics, "revoke": ()}
    return values


def _policy_outdated(queue: DeployedQueue, topic_arns: list[str]) -> bool:
    current = document_of(queue.attributes.get("Policy"))
    current = current if isinstance(current, Mapping) else None
    return current is None or canonical(merge_queue_policy(current, queue.arn, topic_arns)) != canonical(current)


def _stale_policy_topics(topology: Topology, queue: DeployedQueue | None) -> tuple[str, ...]:
    """Topics eventbus's statements in the queue policy name that the queue no longer subscribes to."""
    current = document_of(queue.attributes.get("Policy")) if queue else None
    wanted = {f"{SID_PREFIX}{subscription.topic}" for subscription in topology.subscriptions}
    sids = [
        s.get("Sid") for s in statements_of(current if isinstance(current, Mapping) else None) if isinstance(s, Mapping)
    ]
    return tuple(
        sid.removeprefix(SID_PREFIX)
        for sid in sids
        if isinstance(sid, str) and sid.startswith(SID_PREFIX) and sid not in wanted
    )


def _redrive_problem(spec: QueueSpec, attributes: Mapping[str, str], dead_letter: DeployedQueue | None) -> str | None:
    policy = document_of(attributes.get("RedrivePolicy"))
    target = policy.get("deadLetterTargetArn") if isinstance(policy, Mapping) else None
    if not isinstance(policy, Mapping) or not target:
        return (
            f"queue {spec.name} has no redrive policy: a message that keeps failing is received again and again "
            f"instead of moving to {spec.dead_letter_name}"
        )
    # a dead-letter queue not created yet has no ARN to compare: its name must match
    if (dead_letter is not None and target != dead_letter.arn) or topic_name_of(str(target)) != spec.dead_letter_name:
        expected = dead_letter.arn if dead_letter is not None else spec.dead_letter_name
        return f"queue {spec.name} redrives to {target}, not to {expected}"
    count = _int(str(policy.get("maxReceiveCount")))
    if count != spec.max_receive_count:
        return (
            f"queue {spec.name} redrives after {count} receives, the code after {spec.max_receive_count} "
            "(max_receive_count)"
        )
    return None


def _visibility_problem(spec: QueueSpec, attributes: Mapping[str, str]) -> str | None:
    found = _int(attributes.get("VisibilityTimeout"))
    if found == spec.visibility_timeout:
        return None
    where = f"queue {spec.name} has a visibility timeout of {found} s"
    if found is not None and found < spec.required_visibility_timeout:
        return (
            f"{where}, shorter than the longest handler time limit plus {VISIBILITY_MARGIN} s "
            f"({spec.required_visibility_timeout} s): a message may be delivered again while its handler runs"
        )
    return f"{where}, the code sets {spec.visibility_timeout} s (visibility_timeout)"


def _size_problem(queue: str, expected: int, attributes: Mapping[str, str]) -> str | None:
    found = _int(attributes.get("MaximumMessageSize"))
    if found == expected:
        return None
    return f"queue {queue} accepts messages up to {found} bytes, the code sets {expected} (max_message_bytes)"


def _policy_problems(topology: Topology, deployed: Deployed, queue: DeployedQueue) -> list[str]:
    current = document_of(queue.attributes.get("Policy"))
    statements = statements_of(current if isinstance(current, Mapping) else None)
    present = {s.get("Sid"): s for s in statements if isinstance(s, Mapping)}
    problems = []
    for subscription in topology.subscriptions:
        topic_arn = deployed.topics.get(subscription.topic)
        if topic_arn is None:
            continue  # reported as a missing topic
        expected = queue_policy(queue.arn, [topic_arn])["Statement"][0]
        found = present.get(expected["Sid"])
        if found is None:
            problems.append(
                f"the policy of queue {queue.name} does not let topic {subscription.topic} send to it "
                f"(no statement {expected['Sid']}): on AWS, SNS cannot deliver to the queue"
            )
            continue
        differing = [
            key for key in expected.keys() | found.keys() if canonical(found.get(key)) != canonical(expected.get(key))
        ]
        if differing:
            problems.append(
                f"the policy of queue {queue.name}: statement {expected['Sid']} for topic {subscription.topic} "
                f"differs from the code's in {', '.join(sorted(differing))}"
            )
    return problems


def _raw_delivery_problem(spec: QueueSpec, subscription: SubscriptionSpec, attributes: Mapping[str, str]) -> str | None:
    found = attributes.get("RawMessageDelivery", "false").lower() == "true"
    if found == subscription.raw_delivery:
        return None
    return (
        f"subscription of queue {spec.name} to topic {subscription.topic} has raw delivery {_on(found)}, "
        f"the code chooses {_on(subscription.raw_delivery)} (raw_delivery)"
    )


def _filter_values(subscription: SubscriptionSpec) -> dict[str, Any]:
    """The ``event_names`` values of a subscription change, with ``filter_scope`` when it is not the body (the values
    of a body filter stay what they were before claim-check)."""
    values: dict[str, Any] = {"event_names": subscription.event_names}
    if subscription.event_names is not None and subscription.filter_scope is not FilterScope.BODY:
        values["filter_scope"] = subscription.filter_scope
    return values


def _filter_problem(spec: QueueSpec, subscription: SubscriptionSpec, attributes: Mapping[str, str]) -> str | None:
    where = f"subscription of queue {spec.name} to topic {subscription.topic}"
    return filter_policy_problem(where, subscription.event_names, subscription.filter_scope, attributes)


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
