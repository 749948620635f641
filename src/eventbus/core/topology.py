"""Topology as code: what a service needs on the message bus, derived from its code and settings, and how what is
deployed differs from it.

Pure: no vendor library, no I/O. :func:`topology_of` builds the :class:`Topology` the code implies (the topic it
publishes to, its queue and dead-letter queue, the subscription of the queue to each topic with the filter policy
from the ``@subscribe`` registry, the queue policy that lets those topics send to the queue, and, with claim-check
on, the S3 bucket large events go through with its expiry rule); an adapter
(:class:`eventbus.ports.TopologyStore`) reads what is deployed as a :class:`Deployed` snapshot;
:mod:`eventbus.core.topology_plan` compares the two: ``plan`` lists the :class:`Change` s that make the deployment
match, ``drift`` the :class:`Drift` s a check reports.

A :class:`Deployed` snapshot carries AWS's attribute names (``VisibilityTimeout``, ``Policy``, ``FilterPolicy``...); a
:class:`Change` names topics and queues, never ARNs: what a plan creates has no ARN yet, so the adapter resolves them
when it applies the change (:mod:`eventbus.core.topology_documents` has the documents it builds then). The
claim-check bucket's part is :mod:`eventbus.core.topology_bucket`; this module re-exports its public names and the
documents' it always had.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Final

from eventbus.core.naming import FIFO_SUFFIX
from eventbus.core.topology_bucket import EXPIRY_RULE_ID, DeployedBucket, PayloadBucketSpec, payload_bucket_of
from eventbus.core.topology_documents import (
    FILTER_POLICY_MAX_BYTES,
    FILTER_POLICY_MAX_VALUES,
    SID_PREFIX,
    FilterScope,
    compact_json,
    filter_policy,
    queue_policy,
    topic_name_of,
)
from eventbus.errors import ConfigurationError

__all__ = [
    "DEAD_LETTER_RETENTION",
    "EXPIRY_RULE_ID",
    "FILTER_POLICY_MAX_BYTES",
    "FILTER_POLICY_MAX_VALUES",
    "SID_PREFIX",
    "SNS_DEFAULT_MAX_MESSAGE_BYTES",
    "VISIBILITY_MARGIN",
    "Change",
    "ChangeKind",
    "Deployed",
    "DeployedBucket",
    "DeployedQueue",
    "DeployedSubscription",
    "Drift",
    "DriftKind",
    "FilterScope",
    "PayloadBucketSpec",
    "QueueSpec",
    "SubscriptionSpec",
    "Topology",
    "compact_json",
    "filter_policy",
    "queue_policy",
    "topic_name_of",
    "topology_of",
]

#: SNS's default ``MaximumMessageSize`` of a topic: larger events need the attribute raised (up to 1 MiB).
SNS_DEFAULT_MAX_MESSAGE_BYTES: Final = 262_144
#: Seconds a queue's visibility timeout must exceed the longest handler time limit by.
VISIBILITY_MARGIN: Final = 30
#: The dead-letter queue keeps messages SQS's longest (14 days): SQS's own redrive keeps a message's first enqueue
#: time, so with the default 4 days a message that failed slowly would expire soon after it arrived there.
DEAD_LETTER_RETENTION: Final = 1_209_600
_SQS_MAX_VISIBILITY: Final = 43_200
_SQS_MESSAGE_BYTES: Final = (1024, 1_048_576)
_SQS_RECEIVE_COUNT: Final = (1, 1000)
_NAME: Final = re.compile(r"[A-Za-z0-9_-]+")
#: AWS's longest queue and topic names, a FIFO one's ``.fifo`` included.
_QUEUE_NAME_MAX: Final = 80
_TOPIC_NAME_MAX: Final = 256


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """The service's queue and its dead-letter queue (the tags go on both)."""

    name: str
    dead_letter_name: str
    max_receive_count: int
    visibility_timeout: int
    #: Longest body SQS accepts on the queue (``MaximumMessageSize``); the dead-letter queue takes the same.
    max_message_bytes: int
    tags: Mapping[str, str] = field(default_factory=dict)
    #: The longest handler time limit plus :data:`VISIBILITY_MARGIN` (0: no handler has a limit).
    required_visibility_timeout: int = 0
    #: The dead-letter queue's ``MessageRetentionPeriod``, seconds.
    dead_letter_retention: int = DEAD_LETTER_RETENTION
    #: FIFO (``EVENTBUS_FIFO``): both queues and the topology's topics are FIFO, content-based deduplication off.
    fifo: bool = False


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    """The queue's subscription to one topic."""

    topic: str
    raw_delivery: bool
    #: Event names SNS delivers to the queue (see :func:`filter_policy`); ``None``: every event (no filter policy).
    event_names: tuple[str, ...] | None
    #: Where the filter policy matches the event name: the body, or (claim-check on) the ``eventName`` attribute.
    filter_scope: FilterScope = FilterScope.BODY


@dataclass(frozen=True, slots=True)
class Topology:
    """What the code implies: topics it publishes to, its queue, its subscriptions."""

    publishes_to: tuple[str, ...]
    queue: QueueSpec
    subscriptions: tuple[SubscriptionSpec, ...]
    #: Warnings found while deriving it (e.g. a visibility timeout shorter than a handler's time limit).
    warnings: tuple[str, ...] = ()
    #: The claim-check bucket (``None``: claim-check off, no bucket).
    payload_bucket: PayloadBucketSpec | None = None


@dataclass(frozen=True, slots=True)
class DeployedSubscription:
    """A subscription of the queue found on a topic."""

    topic: str
    arn: str
    attributes: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class DeployedQueue:
    """A queue found deployed, with its attributes (``None`` when it does not exist)."""

    name: str
    url: str
    arn: str
    attributes: Mapping[str, str]
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Deployed:
    """What an adapter found: topic names that exist (with their ARNs), the queue, its dead-letter queue, every
    subscription of the queue (on any topic), and the claim-check bucket when the topology has one."""

    topics: Mapping[str, str]
    queue: DeployedQueue | None
    dead_letter_queue: DeployedQueue | None
    subscriptions: tuple[DeployedSubscription, ...]
    #: Attributes of the topics found, by topic name (what the store reports; an emulator may leave some out).
    topic_attributes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: The claim-check bucket (``None``: it does not exist, or the topology has none).
    payload_bucket: DeployedBucket | None = None


class ChangeKind(StrEnum):
    """What :func:`plan` would do."""

    CREATE_TOPIC = "create-topic"
    SET_TOPIC_ATTRIBUTES = "set-topic-attributes"
    CREATE_QUEUE = "create-queue"
    SET_QUEUE_ATTRIBUTES = "set-queue-attributes"
    TAG_QUEUE = "tag-queue"
    SUBSCRIBE = "subscribe"
    SET_SUBSCRIPTION_ATTRIBUTES = "set-subscription-attributes"
    UNSUBSCRIBE = "unsubscribe"
    CREATE_BUCKET = "create-bucket"
    SET_BUCKET_LIFECYCLE = "set-bucket-lifecycle"


@dataclass(frozen=True, slots=True)
class Change:
    """One change to the deployment: its kind, the resource, and the values to set (adapter-neutral names).

    ``resource`` is a topic name (the topic kinds, with ``max_message_bytes`` when SNS's default 262,144 is too small,
    and the subscription kinds: the queue's subscription to that topic)
    or a queue name. ``create-topic`` and ``create-queue`` have ``fifo: True`` for a FIFO one (``FifoTopic`` /
    ``FifoQueue``, content-based deduplication off: AWS sets FIFO-ness at creation only); ``set-topic-attributes`` and
    ``set-queue-attributes`` have ``content_based_deduplication: False`` when a FIFO one has it on.
    ``values`` by kind: ``create-queue`` ``dead_letter`` (bool); ``set-queue-attributes`` only what
    differs of ``visibility_timeout``, ``max_message_bytes``, ``retention`` (seconds), ``redrive``
    (``{"dead_letter_queue": name, "max_receive_count": n}``), ``policy`` (``{"allow": topic names, "revoke": topic
    names}``); ``tag-queue`` ``tags``; the subscription kinds ``queue``, and ``raw_delivery`` and ``event_names``
    (``None``: no filter policy) with ``filter_scope`` (a :class:`FilterScope`, only when not the body), in
    ``set-subscription-attributes`` only when they differ, with ``subscription_arn`` (also in ``unsubscribe``).
    ``resource`` is the bucket's name for ``create-bucket`` (no values: the region is the adapter's) and
    ``set-bucket-lifecycle`` (``expiry_days``: the rule :data:`EXPIRY_RULE_ID` replaced, other rules kept).
    """

    kind: ChangeKind
    resource: str
    values: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        """One line for ``plan`` output."""
        kind, name, values = self.kind, self.resource, self.values
        if kind is ChangeKind.CREATE_TOPIC:
            size = values.get("max_message_bytes")
            notes = ["FIFO"] if values.get("fifo") else []
            notes += [f"max message size {size} bytes"] if size else []
            return f"+ create topic {name}" + (f" ({', '.join(notes)})" if notes else "")
        if kind is ChangeKind.SET_TOPIC_ATTRIBUTES:
            parts = [f"max message size {values['max_message_bytes']} bytes"] if "max_message_bytes" in values else []
            parts += ["content-based deduplication off"] if "content_based_deduplication" in values else []
            return f"~ set topic {name}: {'; '.join(parts)}"
        if kind is ChangeKind.CREATE_QUEUE:
            notes = ["FIFO"] if values.get("fifo") else []
            notes += ["dead-letter queue"] if values.get("dead_letter") else []
            return f"+ create queue {name}" + (f" ({', '.join(notes)})" if notes else "")
        if kind is ChangeKind.SET_QUEUE_ATTRIBUTES:
            return f"~ set queue {name}: {'; '.join(_queue_values_text(values))}"
        if kind is ChangeKind.TAG_QUEUE:
            return f"~ tag queue {name}: {', '.join(f'{k}={v}' for k, v in sorted(values.get('tags', {}).items()))}"
        if kind is ChangeKind.CREATE_BUCKET:
            return f"+ create bucket {name} (claim-checked events)"
        if kind is ChangeKind.SET_BUCKET_LIFECYCLE:
            days = values.get("expiry_days")
            return f"~ set bucket {name} lifecycle: rule {EXPIRY_RULE_ID} expires objects after {days} days"
        queue = values.get("queue", "?")
        if kind is ChangeKind.SUBSCRIBE:
            return f"+ subscribe queue {queue} to topic {name} ({_delivery_text(values)})"
        if kind is ChangeKind.SET_SUBSCRIPTION_ATTRIBUTES:
            return f"~ set subscription of queue {queue} to topic {name}: {_delivery_text(values)}"
        return f"- unsubscribe queue {queue} from topic {name}"


def _queue_values_text(values: Mapping[str, Any]) -> list[str]:
    parts = []
    if "visibility_timeout" in values:
        parts.append(f"visibility timeout {values['visibility_timeout']} s")
    if "max_message_bytes" in values:
        parts.append(f"maximum message size {values['max_message_bytes']} bytes")
    if "retention" in values:
        parts.append(f"retention {values['retention']} s")
    if "content_based_deduplication" in values:
        parts.append("content-based deduplication off")
    if "redrive" in values:
        redrive = values["redrive"]
        parts.append(f"redrive to {redrive['dead_letter_queue']} after {redrive['max_receive_count']} receives")
    if "policy" in values:
        if values["policy"].get("allow"):
            parts.append(f"policy allows topics {', '.join(values['policy']['allow'])} to send")
        if values["policy"].get("revoke"):
            parts.append(f"policy no longer allows topics {', '.join(values['policy']['revoke'])}")
    return parts


def _delivery_text(values: Mapping[str, Any]) -> str:
    parts = []
    if "event_names" in values:
        names = values["event_names"]
        on = " on the eventName attribute" if values.get("filter_scope") == FilterScope.ATTRIBUTES else ""
        parts.append("no filter: every event" if names is None else f"filter{on}: {', '.join(names)}")
    if "raw_delivery" in values:
        parts.append(f"raw delivery {'on' if values['raw_delivery'] else 'off'}")
    return "; ".join(parts)


class DriftKind(StrEnum):
    """A difference between the deployment and the code that ``check`` reports."""

    MISSING_TOPIC = "missing-topic"
    MISSING_QUEUE = "missing-queue"
    MISSING_DEAD_LETTER_QUEUE = "missing-dead-letter-queue"
    REDRIVE = "redrive"
    VISIBILITY = "visibility"
    MAX_MESSAGE_SIZE = "max-message-size"
    QUEUE_POLICY = "queue-policy"
    MISSING_SUBSCRIPTION = "missing-subscription"
    RAW_DELIVERY = "raw-delivery"
    FILTER_POLICY = "filter-policy"
    EXTRA_SUBSCRIPTION = "extra-subscription"
    MISSING_BUCKET = "missing-bucket"
    BUCKET_LIFECYCLE = "bucket-lifecycle"
    #: A queue or topic whose FIFO-ness differs from the code's: AWS cannot change it, it must be recreated.
    FIFO = "fifo"
    CONTENT_BASED_DEDUPLICATION = "content-based-deduplication"


@dataclass(frozen=True, slots=True)
class Drift:
    """One difference, named so an operator can act on it."""

    kind: DriftKind
    detail: str

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.detail}"


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ConfigurationError(f"{name}: must be between {low} and {high} (SQS's limits)")


def topology_of(
    *,
    topic: str,
    queue: str,
    event_names: Iterable[str] | None,
    dead_letter_suffix: str = "__dlq",
    max_receive_count: int = 5,
    visibility_timeout: int = 30,
    handler_time_limits: Iterable[float | None] = (),
    raw_delivery: bool = False,
    max_message_bytes: int = 1024 * 1024,
    tags: Mapping[str, str] | None = None,
    payload_bucket: str | None = None,
    payload_expiry_days: int = 15,
    fifo: bool = False,
) -> Topology:
    """The topology the code implies (``event_names=None``: the queue takes every event, no filter policy).

    With ``payload_bucket`` (claim-check on) the topology holds that bucket with its expiry rule, and the filter policy
    matches the ``eventName`` message attribute: a claim-checked event's body is a pointer without
    ``metadata.eventName``, which a body filter would drop. An expiry no longer than the dead-letter queue's retention
    gives a warning (a dead-lettered event would lose its body).

    With ``fifo`` the topic, the queue and its dead-letter queue (``Q__dlq.fifo`` for ``Q.fifo``) are FIFO: their
    names must end in ``.fifo``, and without it must not.

    No event name at all (no handler) subscribes the queue to nothing, with a warning: SNS refuses an empty filter
    policy, and no filter would deliver every event only for the worker to drop it. The visibility timeout is raised
    to the longest handler time limit plus :data:`VISIBILITY_MARGIN` (capped at SQS's 12 hours), with a warning.

    Raises:
        ConfigurationError: the filter policy would exceed SNS's limits (names the count and the limit), a name is
            not a valid SQS queue, SNS topic or S3 bucket name, or a number is outside SQS's limits.
    """
    tail = FIFO_SUFFIX if fifo else ""
    dead_letter = f"{queue.removesuffix(tail) if fifo else queue}{dead_letter_suffix}{tail}"
    for what, name, longest in (("topic", topic, _TOPIC_NAME_MAX), ("queue", queue, _QUEUE_NAME_MAX)):
        if not _valid_name(name, longest, fifo):
            rule = f"then {FIFO_SUFFIX}" if fifo else f"no {FIFO_SUFFIX} while FIFO is off"
            text = f"letters, digits, hyphens, underscores, {rule}; at most {longest} characters"
            raise ConfigurationError(f"{what}: not a valid name ({text})")
    if not _valid_name(dead_letter, _QUEUE_NAME_MAX, fifo):
        raise ConfigurationError("dead_letter_suffix: the dead-letter queue's name is not a valid SQS queue name")
    _check_range("max_receive_count", max_receive_count, *_SQS_RECEIVE_COUNT)
    _check_range("visibility_timeout", visibility_timeout, 0, _SQS_MAX_VISIBILITY)
    _check_range("max_message_bytes", max_message_bytes, *_SQS_MESSAGE_BYTES)
    warnings: list[str] = []
    limits = [limit for limit in handler_time_limits if limit is not None]
    required = math.ceil(max(limits)) + VISIBILITY_MARGIN if limits else 0
    chosen = max(visibility_timeout, required)
    if chosen > _SQS_MAX_VISIBILITY:
        chosen = _SQS_MAX_VISIBILITY
        warnings.append(
            f"the longest handler time limit ({max(limits):g} s) plus {VISIBILITY_MARGIN} s exceeds SQS's longest "
            f"visibility timeout ({_SQS_MAX_VISIBILITY} s): a handler running that long may run twice"
        )
    elif chosen > visibility_timeout:
        warnings.append(
            f"visibility_timeout raised from {visibility_timeout} s to {chosen} s: the longest handler time limit is "
            f"{max(limits):g} s, plus a {VISIBILITY_MARGIN} s margin"
        )
    bucket = None
    if payload_bucket is not None:
        bucket, found = payload_bucket_of(payload_bucket, payload_expiry_days, DEAD_LETTER_RETENTION)
        warnings += found
    scope = FilterScope.BODY if bucket is None else FilterScope.ATTRIBUTES
    subscriptions: tuple[SubscriptionSpec, ...] = ()
    if event_names is None:
        subscriptions = (SubscriptionSpec(topic, raw_delivery, None, scope),)
    else:
        names = tuple(sorted(set(event_names)))
        if names:
            filter_policy(names, scope)  # refuses a registry over SNS's limits now, not at apply
            subscriptions = (SubscriptionSpec(topic, raw_delivery, names, scope),)
        else:
            warnings.append(f"no handler takes any event: queue {queue} is not subscribed to topic {topic}")
    tagged = dict(tags or {})
    spec = QueueSpec(queue, dead_letter, max_receive_count, chosen, max_message_bytes, tagged, min(required, chosen))
    spec = replace(spec, fifo=fifo) if fifo else spec
    return Topology((topic,), spec, subscriptions, tuple(warnings), bucket)


def _valid_name(name: str, longest: int, fifo: bool) -> bool:
    """A FIFO name is a valid standard one followed by ``.fifo``, the whole within AWS's length."""
    if fifo and not name.endswith(FIFO_SUFFIX):
        return False
    return len(name) <= longest and _NAME.fullmatch(name.removesuffix(FIFO_SUFFIX) if fifo else name) is not None
