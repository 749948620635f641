"""The publisher bounds what a queue without raw delivery receives: SNS's JSON notification around the event
(:func:`sns_delivered_size`). An event SNS would take but whose notification could exceed ``max_message_bytes`` is
refused before any call, or claim-checked with a payload store; the bound is never below the escaped event's size,
however the notification escapes it. (The integration test ``test_sns_wrapper_size`` compares it with what the
emulators deliver.)"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from eventbus.adapters.aws import SnsPublisher, sns_delivered_size
from eventbus.adapters.aws.sns import LONGEST_TOPIC_ARN, SNS_WRAPPER_BYTES
from eventbus.adapters.memory import InMemoryPayloadStore
from eventbus.core.claim_check import parse_pointer
from eventbus.core.envelope import Envelope
from eventbus.errors import EnvelopeError, EnvelopeRejection, PublishError
from tests.unit.test_sns_batching import (
    KIB,
    MIB,
    TOPIC,
    FakeSns,
    attributes_of,
    entry_bytes,
    envelope,
    sized,
    sns_publisher,
)


def refusal_of(publisher: SnsPublisher, event: Envelope) -> EnvelopeError | None:
    """The publisher's refusal of ``event`` (sent to the fake client if none)."""
    try:
        publisher.publish(event)
    except PublishError as exc:
        cause = exc.__cause__
    else:
        return None
    assert isinstance(cause, EnvelopeError)
    return cause


def test_an_event_sns_takes_but_whose_notification_could_exceed_the_limit_is_refused_before_any_call() -> None:
    client = FakeSns()
    publisher = sns_publisher(client)
    at_the_limit = sized(0, MIB)  # SNS takes it; wrapped in its notification it is over 1 MiB

    refusal = refusal_of(publisher, at_the_limit)
    assert refusal is not None
    assert refusal.reason is EnvelopeRejection.OVERSIZED
    assert f"is {MIB} bytes, up to {sns_delivered_size(at_the_limit, TOPIC)}" in refusal.detail
    assert "without raw delivery" in refusal.detail
    assert client.published == []
    with_room = sized(1, MIB - 4 * KIB)
    assert sns_delivered_size(with_room, TOPIC) <= MIB
    publisher.publish(with_room)
    assert len(client.published) == 1


def test_with_a_payload_store_such_an_event_is_claim_checked_instead() -> None:
    client, store = FakeSns(), InMemoryPayloadStore()
    publisher = sns_publisher(client, payload_store=store)  # threshold: 1 MiB, which the event is not over
    event = sized(0, MIB - 100)

    publisher.publish(event)

    [sent] = client.published
    pointer = parse_pointer(sent["Message"])
    assert pointer is not None
    assert store.get(pointer, MIB) == event.to_json().encode()


def test_a_publisher_given_only_the_topic_name_counts_the_longest_arn() -> None:
    event = envelope(0, 100)
    assert sns_delivered_size(event) - sns_delivered_size(event, TOPIC) == 2 * (LONGEST_TOPIC_ARN - len(TOPIC))
    assert sns_delivered_size(event, TOPIC) > len(event.to_json()) + SNS_WRAPPER_BYTES


#: Notes whose escaping costs the most, one kind at a time or mixed: quotes and backslashes (escaped in the event's
#: JSON, then again in the notification), slashes, non-ASCII of two, three and four UTF-8 bytes, control characters.
COSTLY = ['"', "\\", "/", "é", "漢", "😀", "\n", "x"]
notes = st.one_of(
    st.text(max_size=300),
    st.builds(
        lambda unit, times: unit * times, st.text(st.sampled_from(COSTLY), min_size=1, max_size=4), st.integers(0, 2500)
    ),
)


@settings(max_examples=300, deadline=None)
@given(notes)
def test_the_bound_is_never_below_the_escaped_event_however_the_notification_escapes_it(text: str) -> None:
    event = envelope(0).model_copy(update={"payload": {"note": text}})
    message = event.to_json()
    # the bound's share for the message alone: without the fields, the ARNs and the eventName attribute
    attribute = len('"eventName"') + len('"String"') + len(json.dumps(event.event_name)) + 64
    bound = sns_delivered_size(event, TOPIC) - SNS_WRAPPER_BYTES - 2 * len(TOPIC) - attribute
    for escaped in (
        json.dumps(message, ensure_ascii=False).encode("utf-8", "surrogatepass"),  # UTF-8 as is
        json.dumps(message).encode(),  # \u escapes, as the emulators write it
        json.dumps(message).replace("/", "\\/").encode(),  # and slashes escaped, which JSON allows
    ):
        assert bound >= len(escaped)


@settings(max_examples=300, deadline=None)
@given(notes, st.floats(0.5, 1.5))
def test_the_publisher_refuses_exactly_what_the_bound_or_sns_s_count_puts_over_the_limit(
    text: str, share: float
) -> None:
    event = envelope(0).model_copy(update={"payload": {"note": text}})
    counted = entry_bytes({"Message": event.to_json(), "MessageAttributes": attributes_of(event)})
    limit = int(sns_delivered_size(event, TOPIC) * share)  # around the bound, where a shortcut would show
    refusal = refusal_of(sns_publisher(FakeSns(), max_message_bytes=limit), event)
    assert (refusal is not None) == (counted > limit or sns_delivered_size(event, TOPIC) > limit)
