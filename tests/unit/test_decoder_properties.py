"""Property tests: whatever arrives, the decoder raises only EnvelopeError and the consumer's decision never raises."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventbus.core.dispatch import Fate, decide
from eventbus.core.envelope import decode_message_body
from eventbus.core.errors import EnvelopeError
from eventbus.core.registry import Subscription, SubscriptionRegistry
from eventbus.payload import EventPayload


class Typed(EventPayload):
    n: int


REGISTRY = SubscriptionRegistry([Subscription("doGood", "h"), Subscription("typed", "t", Typed)])
METADATA_FIELDS = [
    "containsPersonalData",
    "tracestate",
    "traceparent",
    "errorOrigin",
    "errorCode",
    "authorization",
    "publishDate",
    "entityId",
    "publisherName",
    "eventName",
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)


def check(body: str | bytes) -> None:
    started = time.monotonic()
    with contextlib.suppress(EnvelopeError):
        decode_message_body(body)
    decision = decide(body, REGISTRY)
    assert decision.fate in set(Fate)
    assert time.monotonic() - started < 1.0


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes(body: bytes) -> None:
    check(body)


@settings(max_examples=300)
@given(json_values)
def test_json_of_any_shape(value: Any) -> None:
    check(json.dumps(value))


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(METADATA_FIELDS), json_values), json_values)
def test_wrong_types_in_every_metadata_field(metadata: dict[str, Any], payload: Any) -> None:
    body = json.dumps({"metadata": metadata, "payload": payload})
    check(body)
    check(json.dumps({"Type": "Notification", "Message": body}))


@settings(max_examples=50)
@given(st.integers(min_value=1, max_value=50_000))
def test_deep_nesting_and_huge_strings(depth: int) -> None:
    check("[" * depth + "]" * depth)
    check('{"metadata": {"eventName": "doGood"}, "payload": {"s": "' + "x" * depth * 10 + '"}}')
