"""Scheduling of the visibility heartbeat and of the outage backoff (pure logic, a fake clock)."""

from __future__ import annotations

import pytest

from eventbus.celery.transport.heartbeat import Backoff, VisibilityHeartbeat


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_message_is_extended_once_half_its_visibility_is_gone() -> None:
    clock = Clock()
    beat = VisibilityHeartbeat(margin=0.5, clock=clock)
    beat.received("a", 30)
    clock.now += 14
    assert beat.due(["a"]) == []
    clock.now += 1.5
    assert beat.due(["a"]) == [("a", 30)]
    assert beat.due(["a"]) == [], "on its way: not sent twice"
    beat.extended("a")
    clock.now += 14
    assert beat.due(["a"]) == [], "extended: not due again until half of the new timeout is gone"
    clock.now += 1.5
    assert beat.due(["a"]) == [("a", 30)]


def test_a_failed_extension_is_sent_again_at_the_next_tick_and_the_deadline_stays() -> None:
    """Issue 9 item 4: the deadline moved before the call succeeded, so one failed call let the message lapse."""
    clock = Clock()
    beat = VisibilityHeartbeat(margin=0.5, clock=clock)
    beat.received("a", 20)
    clock.now += 10
    assert beat.due(["a"]) == [("a", 20)]
    beat.extension_failed("a")
    clock.now += 1
    assert beat.due(["a"]) == [("a", 20)], "still due: the failed extension is retried at once"
    beat.extended("a")
    clock.now += 9.5
    assert beat.due(["a"]) == [], "the deadline counts from the call that succeeded"
    clock.now += 0.5
    assert beat.due(["a"]) == [("a", 20)]


def test_the_deadline_of_a_success_counts_from_when_the_call_was_sent() -> None:
    clock = Clock()
    beat = VisibilityHeartbeat(margin=0.5, clock=clock)
    beat.received("a", 20)
    clock.now += 10
    assert beat.due(["a"]) == [("a", 20)]
    clock.now += 3  # a slow call
    beat.extended("a")
    clock.now += 7
    assert beat.due(["a"]) == [("a", 20)], "due 10 s after the call was sent, not after it returned"


def test_an_extension_that_never_answers_is_sent_again() -> None:
    clock = Clock()
    beat = VisibilityHeartbeat(margin=0.5, clock=clock)
    beat.received("a", 20)
    clock.now += 10
    assert beat.due(["a"]) == [("a", 20)]
    clock.now += 4
    assert beat.due(["a"]) == [], "on its way"
    clock.now += 1.5
    assert beat.due(["a"]) == [("a", 20)], "no answer after a quarter of the timeout: sent again"


def test_an_extension_refused_three_times_is_given_up() -> None:
    clock = Clock()
    beat = VisibilityHeartbeat(margin=0.5, clock=clock)
    beat.received("a", 20)
    clock.now += 10
    for _ in range(3):
        assert beat.due(["a"]) == [("a", 20)]
        beat.extension_failed("a", refused=True)
    assert beat.due(["a"]) == [], "SQS keeps refusing (the message is gone): stop asking"


def test_messages_no_longer_held_are_forgotten() -> None:
    clock = Clock()
    beat = VisibilityHeartbeat(clock=clock)
    beat.received("a", 4)
    beat.received("b", 4)
    clock.now += 3
    assert beat.due(["b"]) == [("b", 4)]
    assert len(beat) == 1
    beat.forget("b")
    assert len(beat) == 0


def test_each_message_keeps_its_own_timeout() -> None:
    clock = Clock()
    beat = VisibilityHeartbeat(clock=clock)
    beat.received("short", 4)
    beat.received("long", 60)
    assert beat.shortest_visibility() == 4
    clock.now += 2.5
    assert beat.due(["short", "long"]) == [("short", 4)]


def test_unknown_tags_are_not_extended() -> None:
    beat = VisibilityHeartbeat(clock=Clock())
    assert beat.due(["never-received"]) == []


def test_margin_must_be_a_fraction() -> None:
    with pytest.raises(ValueError, match="margin"):
        VisibilityHeartbeat(margin=1.5)


def test_backoff_doubles_to_its_cap_and_measures_the_outage() -> None:
    clock = Clock()
    backoff = Backoff(initial=0.5, maximum=5.0, clock=clock)
    assert backoff.succeeded() is None, "no outage, nothing to report"
    delays = [backoff.failed() for _ in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert backoff.failing
    clock.now += 21.0
    assert backoff.succeeded() == pytest.approx(21.0)
    assert not backoff.failing
    assert backoff.failed() == 0.5, "a new outage starts from the initial delay"
