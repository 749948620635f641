"""The Publisher port's contract suite.

Subclass :class:`PublisherContract` in a test module, name the subclass ``Test...`` and implement its two hooks::

    class TestMyPublisher(PublisherContract):
        def make_publisher(self, *, failing: bool = False) -> Publisher:
            ...  # a publisher on a fresh topic, or (failing=True) one whose every publish fails

        def delivered(self, expected: int) -> list[str]:
            ...  # the JSON bodies that reached the topic so far, waiting a few seconds for ``expected`` of them

Collection: a subclass runs when its name starts with ``Test`` (``__test__`` is set from the name, unless the class sets
it), so an intermediate subclass named otherwise runs nothing. Set-up the adapter needs (a service, a client) goes in
the hooks or in the subclass's own pytest fixtures, which run before each test body.
"""

from __future__ import annotations

import json

import pytest

from eventbus.core.envelope import Envelope, decode_message_body
from eventbus.demo.seed import SEED_DO_GOOD
from eventbus.errors import PublishError
from eventbus.ports import Publisher
from eventbus.testing.contracts.base import Contract

__all__ = ["PublisherContract", "seed_envelope"]


def seed_envelope(n: int, padding: int = 0) -> Envelope:
    """The seed's ``doGood`` event for ``entity-{n}``, its payload padded with ``padding`` characters."""
    body = json.loads(SEED_DO_GOOD)
    body["metadata"]["entityId"] = f"entity-{n}"
    if padding:
        body["payload"]["padding"] = "p" * padding
    return decode_message_body(json.dumps(body), max_bytes=2 * len(json.dumps(body)))


class PublisherContract(Contract):
    """What every Publisher must do: ids back, every event delivered unchanged, failures raised as PublishError."""

    def make_publisher(self, *, failing: bool = False) -> Publisher:
        """Hook: a new publisher of the adapter under test, on a topic :meth:`delivered` reads.

        With ``failing=True``: one whose every ``publish`` and ``publish_batch`` fails (a topic that does not exist,
        a transport that is down), so the suite can check it raises :class:`PublishError`.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement make_publisher()")

    def delivered(self, expected: int) -> list[str]:
        """Hook: the JSON bodies the publishers made by :meth:`make_publisher` delivered so far in this test.

        Waits (a few seconds at most) until there are ``expected`` of them when the transport is asynchronous.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement delivered()")

    def test_publish_returns_a_message_id_and_delivers_the_envelope_unchanged(self) -> None:
        message_id = self.make_publisher().publish(seed_envelope(1))
        assert isinstance(message_id, str)
        assert message_id
        [body] = self.delivered(1)
        assert json.loads(body) == json.loads(seed_envelope(1).to_json())

    def test_batch_returns_ids_in_order_and_delivers_everything(self) -> None:
        envelopes = [seed_envelope(n) for n in range(25)]
        ids = self.make_publisher().publish_batch(envelopes)
        assert len(ids) == 25
        assert len(set(ids)) == 25
        bodies = self.delivered(25)
        assert sorted(json.loads(b)["metadata"]["entityId"] for b in bodies) == sorted(f"entity-{n}" for n in range(25))

    def test_a_batch_of_more_than_256_kib_in_all_is_delivered(self) -> None:
        # ten events of 30 KiB: each is fine alone, together they exceed what one SNS PublishBatch call may carry
        envelopes = [seed_envelope(n, padding=30 * 1024) for n in range(10)]
        ids = self.make_publisher().publish_batch(envelopes)
        assert len(ids) == 10
        assert all(ids)
        bodies = self.delivered(10)
        assert sorted(json.loads(b)["metadata"]["entityId"] for b in bodies) == sorted(f"entity-{n}" for n in range(10))

    def test_empty_batch_is_a_no_op(self) -> None:
        assert self.make_publisher().publish_batch([]) == []

    def test_failure_raises_publish_error(self) -> None:
        publisher = self.make_publisher(failing=True)
        with pytest.raises(PublishError):
            publisher.publish(seed_envelope(1))
        with pytest.raises(PublishError) as caught:
            publisher.publish_batch([seed_envelope(1), seed_envelope(2)])
        assert set(caught.value.failed_ids) == {"0", "1"}
