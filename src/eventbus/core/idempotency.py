"""The idempotent consumer: a handler runs once per event, however often the event is delivered.

SQS and SNS deliver at least once: a message is redelivered after a worker dies, after a delete is lost, after its
visibility lapsed while its first delivery still runs (a failed heartbeat), and SNS occasionally delivers one publish
twice. A subscription that opts in (``@subscribe(idempotent=True)``) claims the event's key in a
:class:`DeduplicationStore` before its handler runs and marks it done afterwards:

* ``ACQUIRED``: nobody handled it yet, or its last holder's lease lapsed: run the handler, then ``complete``.
* ``DONE``: it was handled: skip the handler, acknowledge the message.
* ``IN_PROGRESS``: another execution holds a live claim: leave this delivery for redelivery (it will find ``DONE``,
  or take over once the holder's lease lapsed).

The *owner* of a claim is one execution of the handler (:func:`dedup_owner`: the delivery's id and a random suffix),
never shared by two, not even by two deliveries of the same SQS message: a redelivery cannot tell whether the first
delivery's handler still runs, so it never takes a live claim over. Liveness is the lease: while the handler runs, a
:class:`LeaseKeeper` renews its claim every third of the lease (the same owner claiming again renews), and stops the
moment the handler returns or raises. A holder that died stops renewing, so its claim lapses at most one lease after
its last renewal, and a later delivery acquires it. The lease is therefore short (:data:`DEFAULT_LEASE`); a handler
may run for any time. A renewal that finds the claim lost (taken or completed by another execution after the lease
lapsed) or cannot reach the store logs a warning; the handler is never interrupted.

Keys (:func:`dedup_key`) and owners fit in :data:`MAX_ID_LENGTH` characters whatever the event's id.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Final, TypeVar

from eventbus.errors import DeduplicationError, DuplicateInProgress
from eventbus.ports import MAX_ID_LENGTH, Claim, DeduplicationStore

logger = logging.getLogger("eventbus.idempotency")

T = TypeVar("T")

#: How long a claim holds after its holder's last renewal (seconds): how long a crashed holder blocks its event.
DEFAULT_LEASE: Final = 30.0
#: How long a handled event's key is remembered (seconds): duplicates later than this run again.
DEFAULT_KEEP_FOR: Final = 86_400.0
#: Renew a held claim once this fraction of its lease has passed since the last renewal.
RENEW_AFTER: Final = 1 / 3


def dedup_key(service: str, handler: str, event_id: str) -> str:
    """The key of one event for one handler: ``service:handler:event_id``, fitted to :data:`MAX_ID_LENGTH`.

    A key of at most that many printable characters is kept as it is. A longer one, or one holding characters a
    database may refuse (NUL, lone surrogates) or a log line should not carry (line breaks), keeps its longest
    printable start that leaves room for ``~`` and the SHA-256 of the whole key: deterministic, so every delivery of
    an event maps to the same key, and distinct ids give distinct keys.
    """
    return _fitted(f"{service}:{handler}:{event_id}", MAX_ID_LENGTH)


def dedup_owner(delivery_id: str) -> str:
    """A claim owner for one execution: ``delivery_id`` (fitted like a key) and a random suffix, unique per call."""
    suffix = uuid.uuid4().hex
    return f"{_fitted(delivery_id, MAX_ID_LENGTH - len(suffix) - 1)}/{suffix}"


def _fitted(text: str, limit: int) -> str:
    """``text`` if it is at most ``limit`` printable characters, else a readable start and its digest."""
    if len(text) <= limit and text.isprintable():
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    readable = limit - len(digest) - 1
    for position, character in enumerate(text[:readable]):
        if not character.isprintable():
            readable = position
            break
    return f"{text[:readable]}~{digest}"


@dataclass(eq=False, slots=True)
class _Held:
    """One claim a running handler holds; ``lock`` is held while it is renewed, so a renewal never outlives it."""

    store: DeduplicationStore
    key: str
    owner: str
    lease: float
    due: float
    renewing: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)


class LeaseKeeper:
    """Renews the claims of running handlers, from one daemon thread per process.

    :meth:`holding` registers a claim for the duration of a handler; the thread renews it (``store.claim`` by its
    owner) each time ``RENEW_AFTER`` of its lease has passed, until the handler returns or raises: leaving
    :meth:`holding` waits for a renewal in flight, so none lands after the claim was completed or released. A renewal
    that finds the claim lost, or fails, logs a warning; the handler goes on.

    The thread starts with the first claim held in a process and then waits for more. A process forked from one
    with a keeper (a prefork pool child) forgets the parent's claims and starts its own thread when it holds one.
    ``thread=False`` starts none: only :meth:`renew_due` renews (tests with a fake ``clock``). :meth:`close` stops
    the thread and forgets every claim.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, thread: bool = True) -> None:
        self._clock = clock
        self._threaded = thread
        self._reset()
        this = weakref.ref(self)

        def forget_in_child() -> None:
            keeper = this()
            if keeper is not None:
                keeper._reset()

        os.register_at_fork(after_in_child=forget_in_child)

    def _reset(self) -> None:
        """Start afresh: no claims, no thread, new locks (a forked child's copies may be held by a vanished thread)."""
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._held: set[_Held] = set()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def __len__(self) -> int:
        """How many claims are being kept."""
        with self._lock:
            return len(self._held)

    @contextmanager
    def holding(self, store: DeduplicationStore, key: str, owner: str, lease: float) -> Iterator[None]:
        """Keep ``owner``'s claim on ``key`` (just acquired) renewed while the block runs."""
        held = _Held(store, key, owner, lease, self._clock() + self._period(lease))
        with self._lock:
            self._held.add(held)
            if self._threaded and (self._thread is None or not self._thread.is_alive()):
                self._stop = threading.Event()
                self._thread = threading.Thread(
                    target=self._run, args=(self._stop,), name="eventbus-lease-keeper", daemon=True
                )
                self._thread.start()
            self._wake.notify()
        try:
            yield
        finally:
            with self._lock:
                ours = held in self._held  # not after a fork inside the block: then the child never renewed it
                self._held.discard(held)
            if ours:
                with held.lock:
                    held.renewing = False

    def renew_due(self) -> None:
        """Renew every claim due now (the thread's work; call it directly when the keeper has no thread)."""
        now = self._clock()
        with self._lock:
            due = [held for held in self._held if held.renewing and held.due <= now]
        for held in due:
            self._renew(held)

    def close(self) -> None:
        """Stop the thread and forget every claim (a later :meth:`holding` starts a new thread)."""
        with self._lock:
            self._stop.set()
            self._held.clear()
            thread, self._thread = self._thread, None
            self._wake.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)

    @staticmethod
    def _period(lease: float) -> float:
        return max(lease * RENEW_AFTER, 0.001)

    def _renew(self, held: _Held) -> None:
        with held.lock:
            if not held.renewing:
                return
            held.due = self._clock() + self._period(held.lease)
            try:
                state = held.store.claim(held.key, held.owner, held.lease)
            except DeduplicationError as exc:
                logger.warning(
                    "eventbus: could not renew the claim on %s (%s); another delivery may run it once its lease lapses",
                    held.key,
                    exc,
                )
                return
            except Exception:  # a bug in a store: never let it end the renewals of the other claims
                logger.warning("eventbus: could not renew the claim on %s", held.key, exc_info=True)
                return
            if state is not Claim.ACQUIRED:
                held.renewing = False
                logger.warning(
                    "eventbus: lost the claim on %s while its handler still runs (another delivery %s it after its "
                    "lease lapsed); the handler goes on",
                    held.key,
                    "handled" if state is Claim.DONE else "holds",
                )

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.renew_due()
            with self._lock:
                if stop.is_set():
                    return
                pending = [held.due for held in self._held if held.renewing]
                self._wake.wait(max(min(pending) - self._clock(), 0.0) if pending else None)


def run_once(
    store: DeduplicationStore,
    key: str,
    owner: str,
    handler: Callable[[], T],
    *,
    lease: float = DEFAULT_LEASE,
    keep_for: float = DEFAULT_KEEP_FOR,
    keeper: LeaseKeeper | None = None,
) -> tuple[Claim, T | None]:
    """Run ``handler`` unless ``key`` was handled already; return the claim and the handler's result.

    ``owner`` must name this execution alone (:func:`dedup_owner`). With a ``keeper`` the claim is renewed while the
    handler runs, so the handler may outlive ``lease``; without one it must not. A handler that raises releases the
    claim (so a retry can run) and the exception propagates. A failure to record completion after the handler
    succeeded is logged, not raised: the work is done, and a redelivery after the lease may run it again at worst.

    Raises:
        DuplicateInProgress: another execution holds the claim.
        DeduplicationError: the store failed before the handler ran (the handler did not run).
    """
    state = store.claim(key, owner, lease)
    if state is Claim.DONE:
        return state, None
    if state is Claim.IN_PROGRESS:
        raise DuplicateInProgress(f"event {key!r} is being handled by another delivery")
    renewing: AbstractContextManager[None] = (
        nullcontext() if keeper is None else keeper.holding(store, key, owner, lease)
    )
    try:
        with renewing:
            result = handler()
    except BaseException:
        try:
            store.release(key, owner)
        except DeduplicationError as exc:
            logger.warning("eventbus: could not release the claim on %s (%s); it expires with its lease", key, exc)
        raise
    try:
        store.complete(key, owner, keep_for)
    except DeduplicationError as exc:
        logger.warning("eventbus: handled %s but could not record it (%s); a redelivery may run it again", key, exc)
    return state, result
