"""The documents an adapter builds when it applies a topology change, and what the comparisons read back: the SNS
filter policy (in its :class:`FilterScope`) and the order a subscription's attributes are set in, the SQS queue policy
merged with what is deployed, and the redrive policy, with AWS's limits on them; how a deployed queue's or topic's
FIFO attributes differ from the code's. Pure, and below :mod:`eventbus.core.topology` (which re-exports the public names
it had before they moved here); the claim-check bucket's lifecycle rules are :mod:`eventbus.core.topology_bucket`'s
(re-exported here, where adapters found them first)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, Final

from eventbus.core.topology_bucket import expiry_rule, merge_lifecycle_rules
from eventbus.errors import ConfigurationError

__all__ = [
    "FILTER_POLICY_MAX_BYTES",
    "FILTER_POLICY_MAX_VALUES",
    "SID_PREFIX",
    "FilterScope",
    "canonical",
    "compact_json",
    "deduplication_problem",
    "document_of",
    "expiry_rule",
    "fifo_drift",
    "fifo_problem",
    "filter_policy",
    "filter_policy_names",
    "filter_policy_problem",
    "merge_lifecycle_rules",
    "merge_queue_policy",
    "queue_policy",
    "redrive_policy",
    "statements_of",
    "subscription_attributes",
    "topic_name_of",
]

#: SNS: the total combination of values in one filter policy.
FILTER_POLICY_MAX_VALUES: Final = 150
#: SNS: the size of one filter policy document, bytes.
FILTER_POLICY_MAX_BYTES: Final = 256 * 1024
#: Every queue-policy statement eventbus writes has the ``Sid`` ``eventbus-<topic name>``; others are the user's.
SID_PREFIX: Final = "eventbus-"
#: SNS's filter policy scope when a subscription has none set.
_DEFAULT_SCOPE: Final = "MessageAttributes"


class FilterScope(StrEnum):
    """Where a subscription's filter policy looks for the event name (SNS's ``FilterPolicyScope`` values)."""

    #: ``metadata.eventName`` in the body: SNS's choice before claim-check, a pointer body has no such key.
    BODY = "MessageBody"
    #: The ``eventName`` message attribute: the eventbus SNS publisher sets it on every message, claim-checked or not.
    ATTRIBUTES = "MessageAttributes"


#: What a filter policy matches in each scope, for the texts ``check`` prints.
_FIELD: Final = {FilterScope.BODY: "metadata.eventName", FilterScope.ATTRIBUTES: "the eventName message attribute"}


def compact_json(document: Any) -> str:
    """``document`` as the compact JSON text eventbus sends to AWS (the form SNS's size limit is measured on)."""
    return json.dumps(document, separators=(",", ":"))


def filter_policy(event_names: Iterable[str], scope: FilterScope = FilterScope.BODY) -> dict[str, Any]:
    """The SNS filter policy that delivers only these event names: on ``metadata.eventName`` in the body
    (``FilterPolicyScope=MessageBody``), or on the ``eventName`` message attribute (``MessageAttributes``).

    Raises:
        ConfigurationError: no name, or more names or bytes than SNS allows in one filter policy.
    """
    names = sorted(set(event_names))
    policy: dict[str, Any] = {"eventName": names}
    if scope is FilterScope.BODY:
        policy = {"metadata": policy}
    hint = "set EVENTBUS_FILTER_POLICY=false to subscribe the queue to every event"
    if not names:
        raise ConfigurationError("event_names: an SNS filter policy needs at least one event name")
    if len(names) > FILTER_POLICY_MAX_VALUES:
        raise ConfigurationError(
            f"filter policy: {len(names)} event names, over SNS's limit of {FILTER_POLICY_MAX_VALUES} values; {hint}"
        )
    size = len(compact_json(policy).encode())
    if size > FILTER_POLICY_MAX_BYTES:
        raise ConfigurationError(
            f"filter policy: {size} bytes for {len(names)} event names, over SNS's limit of "
            f"{FILTER_POLICY_MAX_BYTES} bytes; {hint}"
        )
    return policy


def queue_policy(queue_arn: str, topic_arns: Iterable[str]) -> dict[str, Any]:
    """The SQS queue policy letting each topic send to the queue: one statement per topic, scoped by
    ``aws:SourceArn``."""
    statements = [
        {
            "Sid": f"{SID_PREFIX}{topic_name_of(arn)}",
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": arn}},
        }
        for arn in dict.fromkeys(topic_arns)
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def topic_name_of(arn: str) -> str:
    """The name of a topic (or queue) from its ARN."""
    return arn.rsplit(":", 1)[-1]


def filter_policy_problem(
    where: str, event_names: tuple[str, ...] | None, scope: FilterScope, attributes: Mapping[str, str]
) -> str | None:
    """How the filter policy in a subscription's ``attributes`` differs from the code's (``None``: it does not),
    judged in its scope: the deployed ``FilterPolicyScope`` against ``scope``, then the event names in that scope's
    shape. ``where`` names the subscription in the text."""
    policy = document_of(attributes.get("FilterPolicy")) or None  # "{}" is how SNS is told "no filter"
    if event_names is None:
        return None if policy is None else f"{where} has a filter policy; the code takes every event (no filter)"
    if policy is None:
        return (
            f"{where} has no filter policy: SNS delivers every event, the code handles only "
            f"{len(event_names)} event names"
        )
    found = attributes.get("FilterPolicyScope") or _DEFAULT_SCOPE
    if found != scope.value:
        why = (
            ": a claim-checked event's pointer has no metadata.eventName, SNS would drop it"
            if scope is FilterScope.ATTRIBUTES
            else ""
        )
        return f"{where} filters on {found}, the code on {scope.value} ({_FIELD[scope]}){why}"
    names = filter_policy_names(policy, scope)
    if names is None:
        return f"{where} has a filter policy other than the code's (on {_FIELD[scope]} only)"
    expected = set(event_names)
    parts = []
    if missing := sorted(expected - names):
        parts.append(f"missing event names (SNS drops them): {', '.join(missing)}")
    if extra := sorted(names - expected):
        parts.append(f"extra event names (delivered, no handler): {', '.join(extra)}")
    return f"{where}: filter policy {'; '.join(parts)}" if parts else None


def fifo_problem(what: str, name: str, fifo: bool, attributes: Mapping[str, str]) -> str | None:
    """How the FIFO-ness of the queue or topic (``what``) named ``name`` in its ``attributes`` (``FifoQueue`` /
    ``FifoTopic``; absent: standard) differs from the code's ``fifo`` (``None``: it does not). AWS sets it at creation
    only, so the text says the resource must be recreated."""
    queue = what != "topic"
    attribute = "FifoQueue" if queue else "FifoTopic"
    found = str(attributes.get(attribute, "false")).lower() == "true"
    if found == fifo:
        return None
    lost = "its messages are lost" if queue else "its subscriptions go with it"
    kind, wanted = ("FIFO" if found else "standard"), ("FIFO" if fifo else "standard")
    return (
        f"{what} {name} is a {kind} {what}, the code wants a {wanted} one (EVENTBUS_FIFO): "
        f"{'SQS' if queue else 'SNS'} cannot change {attribute} of an existing {what}, it must be "
        f"recreated (delete it, then eventbus topology apply; {lost})"
    )


def deduplication_problem(what: str, name: str, attributes: Mapping[str, str]) -> str | None:
    """What ``check`` reports when a FIFO queue or topic has ``ContentBasedDeduplication`` on (``None``: off)."""
    if str(attributes.get("ContentBasedDeduplication", "false")).lower() != "true":
        return None
    return (
        f"{what} {name} has content-based deduplication on, the code sets it off: events are deduplicated by their "
        "id (MessageDeduplicationId), never by their body"
    )


def fifo_drift(
    fifo: bool, found: Iterable[tuple[str, str, Mapping[str, str]]]
) -> tuple[list[str], list[tuple[str, str, str]]]:
    """Of the queues and topics ``found`` (``(what, name, attributes)``): the texts of those whose FIFO-ness differs
    from the code's ``fifo`` (:func:`fifo_problem`), and, the code's FIFO, ``(what, name, text)`` of those with
    content-based deduplication on (:func:`deduplication_problem`)."""
    recreate: list[str] = []
    deduplicating: list[tuple[str, str, str]] = []
    for what, name, attributes in found:
        problem = fifo_problem(what, name, fifo, attributes)
        if problem:
            recreate.append(problem)
        elif fifo and (text := deduplication_problem(what, name, attributes)):
            deduplicating.append((what, name, text))
    return recreate, deduplicating


def filter_policy_names(policy: Any, scope: FilterScope) -> set[str] | None:
    """The event names of a filter policy shaped as :func:`filter_policy`'s for ``scope``, else None."""
    if scope is FilterScope.BODY:
        if not isinstance(policy, Mapping) or set(policy) != {"metadata"}:
            return None
        policy = policy["metadata"]
    if not isinstance(policy, Mapping) or set(policy) != {"eventName"}:
        return None
    names = policy["eventName"]
    names = [names] if isinstance(names, str) else names
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        return None
    return set(names)


def subscription_attributes(values: Mapping[str, Any], *, creating: bool) -> list[tuple[str, str]]:
    """The subscription's attributes, in the order they are set one by one (an attribute may come twice).

    A body filter policy (nested, on ``metadata.eventName``) is valid only in ``MessageBody`` scope, an attribute one
    (flat, on ``eventName``) in both: so the scope goes first when it becomes ``MessageBody``, and after the flat
    policy when it becomes ``MessageAttributes`` (a change of scope passes through the flat policy in ``MessageBody``
    scope). The flat policy is then set once more: moto (the embedded emulator) builds its matcher when the policy is
    set, in the scope of that moment, and would go on matching the body.
    """
    attributes = []
    if "raw_delivery" in values:
        attributes.append(("RawMessageDelivery", "true" if values["raw_delivery"] else "false"))
    if "event_names" in values:
        names = values["event_names"]
        if names is not None:
            scope = FilterScope(values.get("filter_scope", FilterScope.BODY))
            policy = ("FilterPolicy", compact_json(filter_policy(names, scope)))
            if scope is FilterScope.BODY:
                attributes += [("FilterPolicyScope", scope.value), policy]
            else:
                attributes += [policy, ("FilterPolicyScope", scope.value)] + ([] if creating else [policy])
        elif not creating:
            attributes.append(("FilterPolicy", "{}"))  # how SNS is told to drop a subscription's filter policy
    return attributes


def merge_queue_policy(
    current: Mapping[str, Any] | None, queue_arn: str, topic_arns: Iterable[str], revoke: Iterable[str] = ()
) -> dict[str, Any]:
    """``current`` with :func:`queue_policy`'s statements in it: each of ours replaces the statement with its ``Sid``
    (in place) or is appended; every other statement is kept, except eventbus's for the ``revoke`` topic names."""
    ours = {statement["Sid"]: statement for statement in queue_policy(queue_arn, topic_arns)["Statement"]}
    dropped = {f"{SID_PREFIX}{name}" for name in revoke} - ours.keys()
    merged: list[Any] = []
    seen: set[Any] = set()
    for statement in statements_of(current):
        sid = statement.get("Sid") if isinstance(statement, Mapping) else None
        if sid in ours:
            if sid not in seen:
                merged.append(ours[sid])
            seen.add(sid)
        elif sid not in dropped:
            merged.append(statement)
    merged.extend(statement for sid, statement in ours.items() if sid not in seen)
    document = {key: value for key, value in (current or {}).items() if key != "Statement"}
    document.setdefault("Version", "2012-10-17")
    return {**document, "Statement": merged}


def redrive_policy(dead_letter_arn: str, max_receive_count: int) -> dict[str, Any]:
    """The SQS ``RedrivePolicy`` moving a message to the dead-letter queue after ``max_receive_count`` receives."""
    return {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": max_receive_count}


def statements_of(policy: Mapping[str, Any] | None) -> list[Any]:
    """The statements of a policy document (one given alone, not in a list, counts as a list of one)."""
    found = (policy or {}).get("Statement", [])
    return list(found) if isinstance(found, list) else [found]


def document_of(text: str | None) -> Any:
    """A JSON attribute (a policy, a filter policy) parsed (``None`` when absent, empty or not JSON)."""
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def canonical(value: Any) -> Any:
    """``value`` with one-element lists unwrapped, so a policy AWS returns reformatted compares equal to ours."""
    if isinstance(value, Mapping):
        return {key: canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        return canonical(value[0]) if len(value) == 1 else [canonical(item) for item in value]
    return value
