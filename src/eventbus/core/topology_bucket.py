"""The claim-check bucket in the topology: the bucket the code implies (:class:`PayloadBucketSpec`), the one found
deployed (:class:`DeployedBucket`), the lifecycle rule :data:`EXPIRY_RULE_ID` eventbus writes on it, and how a
deployed rule is judged against the code's.

Pure, and below :mod:`eventbus.core.topology` (which re-exports the public names): it knows nothing of changes or
drift, so :mod:`eventbus.core.topology_plan` turns :func:`bucket_problem` into them. A rule is judged on what it does
(enabled, the whole bucket, the days), not on how S3 spells it back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from eventbus.errors import ConfigurationError

__all__ = [
    "EXPIRY_RULE_ID",
    "DeployedBucket",
    "PayloadBucketSpec",
    "bucket_problem",
    "expiry_rule",
    "lifecycle_problem",
    "merge_lifecycle_rules",
    "payload_bucket_of",
]

#: The ``ID`` of the lifecycle rule eventbus writes on the claim-check bucket; other rules there are the user's.
EXPIRY_RULE_ID: Final = "eventbus-claim-check-expiry"
_BUCKET_NAME: Final = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@dataclass(frozen=True, slots=True)
class PayloadBucketSpec:
    """The S3 bucket claim-checked events go through, and the days after which its lifecycle rule
    (:data:`EXPIRY_RULE_ID`) expires every object in it."""

    name: str
    expiry_days: int


@dataclass(frozen=True, slots=True)
class DeployedBucket:
    """The claim-check bucket found deployed, with its lifecycle rules as S3 returns them (``ID``, ``Status``,
    ``Filter``, ``Expiration``...; none when it has no lifecycle configuration)."""

    name: str
    lifecycle_rules: tuple[Mapping[str, Any], ...] = ()


def payload_bucket_of(name: str, expiry_days: int, dead_letter_retention: int) -> tuple[PayloadBucketSpec, list[str]]:
    """The bucket spec, with a warning when its objects expire no later than the dead-letter queue's retention
    (seconds): a dead-lettered event would lose its body.

    Raises:
        ConfigurationError: not a valid S3 bucket name, or an expiry under a day.
    """
    if not _BUCKET_NAME.fullmatch(name) or ".." in name:
        raise ConfigurationError(
            "large_payload_bucket: not a valid S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)"
        )
    if expiry_days < 1:
        raise ConfigurationError("large_payload_expiry_days: must be at least 1 (S3's limit)")
    bucket = PayloadBucketSpec(name, expiry_days)
    if expiry_days * 86_400 > dead_letter_retention:
        return bucket, []
    return bucket, [
        f"claim-checked bodies expire after {expiry_days} days, no later than the dead-letter queue's "
        f"retention ({dead_letter_retention // 86_400} days): a dead-lettered large event may lose its body"
    ]


def bucket_problem(bucket: PayloadBucketSpec, found: DeployedBucket | None) -> str | None:
    """What ``check`` reports when the bucket is missing (``None`` when it exists: see :func:`lifecycle_problem`)."""
    if found is not None:
        return None
    return (
        f"bucket {bucket.name} does not exist: events over the claim-check threshold cannot be published "
        "(EVENTBUS_LARGE_PAYLOAD_BUCKET)"
    )


def lifecycle_problem(bucket: PayloadBucketSpec, rules: Iterable[Mapping[str, Any]]) -> str | None:
    """What eventbus's expiry rule in ``rules`` does differently from the code's (``None``: nothing)."""
    where = f"bucket {bucket.name}"
    ours = [rule for rule in rules if rule.get("ID") == EXPIRY_RULE_ID]
    if not ours:
        return (
            f"{where} has no lifecycle rule {EXPIRY_RULE_ID}: claim-checked bodies that are kept or not deleted "
            "stay forever"
        )
    rule = ours[0]
    parts = []
    if rule.get("Status") != "Enabled":
        parts.append(f"is {str(rule.get('Status', 'without a status')).lower()}")
    if not _whole_bucket(rule):
        parts.append("applies to part of the bucket only")
    expiration = rule.get("Expiration")
    days = expiration.get("Days") if isinstance(expiration, Mapping) else None
    if days != bucket.expiry_days:
        parts.append(
            f"expires objects after {days} days, the code after {bucket.expiry_days} "
            "(EVENTBUS_LARGE_PAYLOAD_EXPIRY_DAYS)"
        )
    return f"{where}: lifecycle rule {EXPIRY_RULE_ID} {'; '.join(parts)}" if parts else None


def _whole_bucket(rule: Mapping[str, Any]) -> bool:
    """The rule covers every object: no filter, or one on the empty prefix (S3 spells it several ways)."""
    if rule.get("Prefix"):  # the legacy, filter-less form
        return False
    found = rule.get("Filter")
    return not found or (isinstance(found, Mapping) and set(found) <= {"Prefix"} and not found.get("Prefix"))


def expiry_rule(days: int) -> dict[str, Any]:
    """The S3 lifecycle rule :data:`EXPIRY_RULE_ID`: every object in the bucket expires ``days`` days after it was
    stored (claim-checked bodies the consumer kept or could not delete)."""
    return {"ID": EXPIRY_RULE_ID, "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": days}}


def merge_lifecycle_rules(current: Iterable[Mapping[str, Any]], days: int) -> list[dict[str, Any]]:
    """``current`` rules without eventbus's, then :func:`expiry_rule`: the user's rules are kept, as
    ``PutBucketLifecycleConfiguration`` replaces the whole configuration."""
    ours = expiry_rule(days)
    merged = [dict(rule) for rule in current if rule.get("ID") != EXPIRY_RULE_ID]
    return [*merged, ours]
