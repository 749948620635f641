"""The PayloadStore port's contract suite: where claim-checked events' bodies are kept.

Subclass :class:`PayloadStoreContract`, name the subclass ``Test...`` and implement one hook::

    class TestMyPayloadStore(PayloadStoreContract):
        def make_store(self) -> PayloadStore:
            ...  # the store under test, writing into a bucket that exists (it may be shared between tests)

The suite reads everything back through the port (``get`` of a deleted body must say ``claim-check-missing``), so no
second hook is needed. ``make_store`` is called once per test, on first use.

Collection: a subclass runs when its name starts with ``Test`` (``__test__`` is set from the name, unless the class sets
it), so an intermediate subclass named otherwise runs nothing. Set-up the adapter needs (a service, a bucket) goes in
the hooks or in the subclass's own pytest fixtures, which run before each test body.

Failures that depend on the store's technology (an unreachable service must raise with ``permanent`` False, a bucket
that does not exist) are for the adapter's own tests: the suite cannot make them happen through the port.
"""

from __future__ import annotations

import random
import uuid
from functools import cached_property

import pytest

from eventbus.core.claim_check import Pointer, parse_pointer
from eventbus.errors import ClaimCheckError
from eventbus.ports import PayloadStore
from eventbus.testing.contracts.base import Contract

__all__ = ["PayloadStoreContract", "large_body"]

#: Bodies the suite stores: a claim-check stores an event's UTF-8 JSON, but the port takes any bytes.
BODIES = {
    "ascii": b'{"metadata":{"eventName":"doGood"},"payload":{}}',
    "utf-8": '{"payload":{"name":"Zoë «ünïcödé» ✓ 日本語 🚀"}}'.encode(),
    "binary": bytes(range(256)),
}


def large_body(size: int = 300 * 1024) -> bytes:
    """An event-like UTF-8 body of exactly ``size`` bytes, non-ASCII throughout, the same on every call."""
    words = ["événement", "données", "ключ", "値", "✓", "🚀", "plain"]
    rng = random.Random(size)
    parts: list[str] = ['{"payload":"']
    length = len(parts[0])
    while length < size - 2:
        word = rng.choice(words) + " "
        parts.append(word)
        length += len(word.encode())
    text = "".join(parts).encode()[: size - 2]
    # cut at a character boundary, then pad with ASCII to the exact size
    text = text.decode("utf-8", "ignore").encode()
    return text + b" " * (size - 2 - len(text)) + b'"}'


class PayloadStoreContract(Contract):
    """Every payload store: exact round trips, fresh keys, missing and oversized bodies, deletes."""

    def make_store(self) -> PayloadStore:
        """Hook: the store under test; its ``bucket`` exists and may hold other tests' bodies."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_store()")

    @cached_property
    def store(self) -> PayloadStore:
        """This test's store (:meth:`make_store`, called once)."""
        return self.make_store()

    def missing(self) -> Pointer:
        """A pointer into the store's bucket at which nothing was ever stored."""
        return Pointer(self.store.bucket, f"never-stored-{uuid.uuid4()}")

    def assert_missing(self, pointer: Pointer) -> None:
        """``get`` of ``pointer`` fails for good with ``claim-check-missing``."""
        with pytest.raises(ClaimCheckError) as caught:
            self.store.get(pointer, 1024 * 1024)
        assert caught.value.reason == "claim-check-missing"
        assert caught.value.permanent is True

    # ------------------------------------------------------------ put and get

    @pytest.mark.parametrize("name", sorted(BODIES))
    def test_get_returns_the_bytes_put(self, name: str) -> None:
        body = BODIES[name]
        pointer = self.store.put(body)
        assert self.store.get(pointer, len(body)) == body

    def test_a_300_kib_body_round_trips_byte_for_byte(self) -> None:
        body = large_body()
        assert len(body) == 300 * 1024
        pointer = self.store.put(body)
        stored = self.store.get(pointer, 64 * 1024 * 1024)
        assert len(stored) == len(body)
        assert stored == body

    def test_a_body_of_exactly_max_bytes_is_returned(self) -> None:
        body = large_body(4096)
        pointer = self.store.put(body)
        assert self.store.get(pointer, len(body)) == body

    def test_the_pointer_names_the_store_bucket_and_a_message_can_carry_it(self) -> None:
        pointer = self.store.put(b"{}")
        assert isinstance(pointer, Pointer)
        assert pointer.bucket == self.store.bucket
        assert pointer.key
        # the pointer goes out as a message body: a reader must recognise it
        assert parse_pointer(pointer.to_json()) == pointer

    def test_each_put_stores_under_a_new_key(self) -> None:
        pointers = [self.store.put(b"same body") for _ in range(20)]
        assert len({p.key for p in pointers}) == 20
        self.store.delete([pointers[0]])
        assert self.store.get(pointers[1], 100) == b"same body", "deleting one copy leaves the others"

    def test_bodies_stay_apart(self) -> None:
        first, second = self.store.put(b"first"), self.store.put(b"second")
        assert self.store.get(second, 100) == b"second"
        assert self.store.get(first, 100) == b"first"

    # ------------------------------------------------------------ failures of get

    def test_get_of_a_key_never_stored_is_missing_for_good(self) -> None:
        self.assert_missing(self.missing())

    def test_get_over_max_bytes_is_oversized_for_good_and_never_shows_the_body(self) -> None:
        marker = f"do-not-show-{uuid.uuid4().hex}"
        body = (marker * 100).encode()
        pointer = self.store.put(body)
        with pytest.raises(ClaimCheckError) as caught:
            self.store.get(pointer, len(body) - 1)
        assert caught.value.reason == "oversized"
        assert caught.value.permanent is True
        assert marker not in str(caught.value)
        assert marker not in repr(caught.value.args)
        assert marker not in caught.value.detail
        # refusing to read it changed nothing
        assert self.store.get(pointer, len(body)) == body

    def test_get_with_a_max_of_zero_refuses_any_body(self) -> None:
        pointer = self.store.put(b"x")
        with pytest.raises(ClaimCheckError) as caught:
            self.store.get(pointer, 0)
        assert caught.value.reason == "oversized"
        assert caught.value.permanent is True

    # ------------------------------------------------------------ delete

    def test_delete_of_several_one_of_them_missing_deletes_the_others(self) -> None:
        pointers = [self.store.put(f"body {n}".encode()) for n in range(3)]
        kept = self.store.put(b"kept")
        self.store.delete([pointers[0], self.missing(), pointers[1], pointers[2]])
        for pointer in pointers:
            self.assert_missing(pointer)
        assert self.store.get(kept, 100) == b"kept"

    def test_delete_twice_is_no_error(self) -> None:
        pointer = self.store.put(b"once")
        self.store.delete([pointer])
        self.store.delete([pointer])
        self.assert_missing(pointer)

    def test_delete_of_nothing_changes_nothing(self) -> None:
        pointer = self.store.put(b"still here")
        self.store.delete([])
        assert self.store.get(pointer, 100) == b"still here"
