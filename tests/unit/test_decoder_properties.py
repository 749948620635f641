"""Property tests: whatever arrives, the decoder raises only EnvelopeError, and the consumer's decision and the
secret finder never raise, each within a bounded time."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventbus.core.dispatch import Fate, decide
from eventbus.core.envelope import MAX_MESSAGE_BYTES, decode_message_body, read_message_body
from eventbus.core.redaction import sensitive_values_in_body
from eventbus.core.registry import Subscription, SubscriptionRegistry
from eventbus.errors import EnvelopeError
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


#: Per message, for everything the consumer does before dispatching it (a few ms is typical).
TIME_BOUND_SECONDS = 1.0


def check(body: str | bytes) -> None:
    started = time.monotonic()
    with contextlib.suppress(EnvelopeError):
        decode_message_body(body)
    with contextlib.suppress(EnvelopeError):
        read_message_body(body)
    decision = decide(body, REGISTRY)
    assert decision.fate in set(Fate)
    if decision.fate is not Fate.DISPATCH:
        assert decision.reason
    assert isinstance(sensitive_values_in_body(body, MAX_MESSAGE_BYTES), set)
    assert time.monotonic() - started < TIME_BOUND_SECONDS


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


@settings(max_examples=200)
@given(st.text(max_size=500))
def test_any_text_including_lone_surrogates(text: str) -> None:
    check(text)
    check("\ud800" + text)


@settings(max_examples=100)
@given(st.binary(max_size=300))
def test_invalid_utf8_inside_an_envelope(garbage: bytes) -> None:
    check(b'{"metadata": {"eventName": "doGood"}, "payload": {"s": "' + garbage + b'"}}')


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=MAX_MESSAGE_BYTES - 200, max_value=MAX_MESSAGE_BYTES + 200))
def test_strings_at_the_size_limit(size: int) -> None:
    prefix = '{"metadata": {"eventName": "doGood"}, "payload": {"s": "'
    check(prefix + "y" * max(size - len(prefix) - 3, 0) + '"}}')


@settings(max_examples=20, deadline=None)
@given(st.integers(min_value=4_000, max_value=200_000))
def test_huge_numbers(digits: int) -> None:
    check('{"metadata": {"eventName": "typed"}, "payload": {"n": ' + "9" * digits + "}}")
    check('{"metadata": {"eventName": "doGood", "entityId": ' + "9" * digits + '}, "payload": {}}')


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=1, max_value=120_000), st.sampled_from(["[", '{"a":']))
def test_deep_nesting_inside_a_valid_envelope(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    nested = opener * depth + "1" + closer * depth
    check('{"metadata": {"eventName": "doGood"}, "payload": {"deep": ' + nested + "}}")
    check('{"metadata": {"eventName": "doGood", "deep": ' + nested + '}, "payload": {}}')
    check('{"metadata": {"eventName": "doGood", "containsPersonalData": true}, "payload": {"deep": ' + nested + "}}")


@settings(max_examples=100)
@given(json_values, st.integers(min_value=1, max_value=5))
def test_notifications_of_any_shape_and_depth(message: Any, levels: int) -> None:
    body: Any = message
    for _ in range(levels):
        body = {"Type": "Notification", "MessageId": "m", "Message": json.dumps(body)}
    check(json.dumps(body))
    check(json.dumps({"Type": "Notification", "Message": message}))
