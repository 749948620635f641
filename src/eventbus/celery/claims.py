"""Fetching claim-checked bodies off the consumer's event loop.

A claim-checked event's body is one ``GetObject`` away (:mod:`eventbus.core.claim_check`). Made on the event loop,
each fetch would stop everything else the loop does (receiving, handing messages to the pool, acknowledging) for its
whole round trip, one fetch after the other; so the consumer hands them to a few threads of their own and goes on,
and each result comes back on the loop (``hub.call_soon``, which wakes it) to be routed like any message. The message
stays held (and its visibility extended) meanwhile.

Then (:class:`ClaimedMessages`, the router's part for them): the body takes the pointer's place and is judged as if
it had come whole, against ``EVENTBUS_LARGE_PAYLOAD_MAX_BYTES``; a pointer to a missing or unreadable object is
dead-lettered with its reason (``claim-check-missing``, ``claim-check-denied``, ``oversized``); a store that fails or
cannot be reached leaves the message for SQS to deliver again (its redrive policy bounds the attempts). Once the
message is deleted (handled, or dropped) the object is deleted too, unless ``keep_claimed``; a dead-lettered message
keeps its object (a redrive needs it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from kombu.message import Message

from eventbus.celery.acks import SqsAcknowledger, queue_name, sqs_message_id
from eventbus.celery.outcomes import reason_kind
from eventbus.core.claim_check import CLAIM_CHECK_KEY, ClaimedBody, Pointer
from eventbus.core.metric_hooks import MetricHooks
from eventbus.errors import ClaimCheckError
from eventbus.ports import PayloadStore

logger = logging.getLogger("eventbus.consumer")

#: Fetches at once: a few, to overlap their round trips; more would hold more large bodies in memory at once.
FETCH_THREADS: Final = 4


class ClaimFetcher:
    """Fetches bodies from the store on :data:`FETCH_THREADS` threads, and hands each result back on ``hub``.

    ``store`` is called on first use (the container's payload store: built only when a claim-check arrives).
    """

    def __init__(self, store: Callable[[], PayloadStore], max_bytes: int) -> None:
        self._store = store
        self.max_bytes = max_bytes
        self._executor: ThreadPoolExecutor | None = None

    def fetch(self, pointer: Pointer, hub: Any, done: Callable[[bytes | Exception], None]) -> None:
        """Fetch ``pointer``'s body and call ``done`` with it (or with the exception that stopped it) on ``hub``'s
        thread; at once, on this thread, without an event loop."""
        if hub is None:
            done(self._get(pointer))
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=FETCH_THREADS, thread_name_prefix="eventbus-claim-fetch")
        future = self._executor.submit(self._get, pointer)
        future.add_done_callback(lambda finished: hub.call_soon(done, finished.result()))

    def _get(self, pointer: Pointer) -> bytes | Exception:
        try:
            return self._store().get(pointer, self.max_bytes)
        except Exception as exc:  # handed back to the loop, where the message's fate is decided
            return exc


class ClaimedMessages:
    """The event router's part for claim-checked messages, once their body was fetched (or failed to be)."""

    acknowledger: SqsAcknowledger
    metrics: MetricHooks
    claims: ClaimFetcher | None
    keep_claimed: bool
    max_bytes: int

    def _route_body(
        self, message: Message, body: str | bytes, max_bytes: int, run_task_message: Callable[[Message], Any]
    ) -> Any:
        raise NotImplementedError

    def _dead_letter(self, message: Message, reason: str, event_name: str, kind: str) -> None:
        raise NotImplementedError

    def _contain(self, message: Message, exc: Exception) -> None:
        raise NotImplementedError

    def _on_fetched(
        self,
        message: Message,
        claim: ClaimedBody,
        run_task_message: Callable[[Message], Any],
        outcome: bytes | Exception,
    ) -> None:
        """A claim-checked body arrived (or failed to): route the message with it, unless it was settled meanwhile
        (released at shutdown). Never raises, like :meth:`route`."""
        try:
            if not still_held(message):
                return
            body = self._claimed_body(message, claim, outcome)
            if body is not None:
                self._route_body(
                    message, body, self.claims.max_bytes if self.claims else self.max_bytes, run_task_message
                )
        except Exception as exc:
            self._contain(message, exc)

    def _claimed_body(self, message: Message, claim: ClaimedBody, outcome: bytes | Exception) -> str | bytes | None:
        """The claim-checked event's body in the message's place, or ``None`` when the message was settled here."""
        if isinstance(outcome, ClaimCheckError):
            if outcome.permanent:
                self._dead_letter(message, str(outcome), "_invalid", reason_kind(str(outcome)))
            else:
                logger.warning(
                    "eventbus: message %s from queue %s: %s; left for SQS to deliver again",
                    sqs_message_id(message),
                    queue_name(message),
                    outcome,
                )
                self.acknowledger.leave_for_redelivery(message)
                self.metrics.event_settled(
                    event_name="_unknown", queue=queue_name(message), outcome="failed", reason=outcome.reason
                )
            return None
        if isinstance(outcome, Exception):
            raise outcome
        if not self.keep_claimed:
            # deleted with the message (handled or dropped), never with a dead-lettered one: acks.py, settling.py
            message.delivery_info[CLAIM_CHECK_KEY] = claim.pointer
        if claim.notification is None:
            return outcome
        try:
            return claim.with_body(outcome.decode("utf-8"))
        except UnicodeDecodeError:
            return outcome  # judged as it is: not JSON, dead-lettered as malformed


def still_held(message: Message) -> bool:
    """Whether the consumer still holds ``message`` (not settled, not released at shutdown)."""
    if message.acknowledged:
        return False
    delivered = getattr(getattr(message.channel, "qos", None), "_delivered", None)
    return delivered is None or message.delivery_tag in delivered
