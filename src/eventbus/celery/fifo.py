"""FIFO in the worker: one message of each message group at a time, in the order SQS delivered them.

SQS FIFO hands a consumer the messages of one group in order, and no more of that group while some are in flight;
but one receive may bring several messages of a group, and a Celery worker would run them in parallel across its
pool (celery #8352). The consumer therefore routes a FIFO message through :class:`GroupGate`: the first message of a
group goes on at once (to its task, or to its drop or dead letter), the others wait, held (their visibility extended
by the heartbeat) and in order, until it is settled:

* deleted (handled, dropped, or dead-lettered: a poison message does not stop its group) -> the next one goes on;
* released (visible again now: it never started) -> the ones waiting behind it are released too, after it;
* left for redelivery (its task failed) -> it and the ones waiting behind it are handed back together, all visible
  again one visibility timeout from now (``release_later``, one batch, the failed one first): its group comes back in
  order, on SQS (which delivers nothing of a group while one of its messages is in flight) and on an implementation
  that locks groups less strictly (LocalStack delivers later messages once the first is visible again, even with
  others in flight); until then any other message of the group that arrives is handed back to the same moment.
  Other groups keep flowing.

From shutdown on (:meth:`GroupGate.close`), a group's next message is released instead of started.

Messages without a group (standard queues) are not gated. Everything here runs on the consumer's event-loop thread.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from kombu.message import Message

from eventbus.celery.acks import sqs_message_id
from eventbus.celery.claims import still_held


def message_group(message: Message) -> str | None:
    """The message's SQS ``MessageGroupId`` (FIFO queues), else ``None``."""
    attributes = (message.delivery_info.get("sqs_message") or {}).get("Attributes") or {}
    group = attributes.get("MessageGroupId")
    return group if isinstance(group, str) and group else None


class GroupGate:
    """At most one message of each group on its way (routed, running); the rest wait in delivery order.

    ``release`` hands a message back to SQS now (visibility 0); ``release_later`` after the queue's visibility
    timeout (:meth:`~eventbus.ports.DeliverySettlement.release_later`). The consumer calls :meth:`settled` for every
    delivery it settles (the transport's ``on_settled``).
    """

    def __init__(
        self,
        release: Callable[[Message], Any],
        release_later: Callable[[Message, int], Any],
        timeout_of: Callable[[Message], int],
    ) -> None:
        self._release = release
        self._release_later = release_later
        self._timeout_of = timeout_of
        self._running: dict[str, str] = {}  # group -> delivery tag of its message on its way
        self._heads: dict[str, Message] = {}  # group -> its message on its way
        #: group -> (SQS message id of its failed message, monotonic time the block ends): until that message is back
        self._blocked: dict[str, tuple[str, float]] = {}
        self._waiting: dict[str, deque[tuple[Message, Callable[[Message], Any]]]] = {}
        self._group_of: dict[str, str] = {}  # delivery tag -> group, running or waiting
        self._ready: deque[str] = deque()  # groups whose next message may go on
        self._starting = False
        self._closing = False

    def __len__(self) -> int:
        """Messages waiting behind their group's."""
        return sum(len(waiting) for waiting in self._waiting.values())

    def admit(self, group: str, message: Message, route: Callable[[Message], Any]) -> Any:
        """Route ``message`` now if nothing of its group is on its way, else keep it waiting behind."""
        tag = str(message.delivery_tag)
        if self._held_back(group, message):
            return None
        self._group_of[tag] = group
        if self._closing or group in self._running or self._waiting.get(group):
            self._waiting.setdefault(group, deque()).append((message, route))
            if self._closing and group not in self._running:
                self._hand_back(group, self._release)
            return None
        self._running[group] = tag
        self._heads[group] = message
        return route(message)

    def _held_back(self, group: str, message: Message) -> bool:
        """After a failure, a message of its group other than the failed one goes back too, until that one is back
        (where SQS locks the group meanwhile, none arrives)."""
        blocked = self._blocked.get(group)
        if blocked is None:
            return False
        failed_id, until = blocked
        if sqs_message_id(message) == failed_id or time.monotonic() > until:
            del self._blocked[group]
            return False
        self._release_later(message, max(1, round(until - time.monotonic())))
        return True

    def settled(self, delivery_tag: Any, outcome: str) -> None:
        """A delivery was settled: ``"deleted"``, ``"released"`` (visible now) or ``"left"`` (visible later)."""
        tag = str(delivery_tag)
        group = self._group_of.pop(tag, None)
        if group is None:
            return
        if self._running.get(group) != tag:  # a waiting one (released at shutdown)
            waiting = self._waiting.get(group)
            if waiting:
                self._waiting[group] = deque(item for item in waiting if str(item[0].delivery_tag) != tag)
            return
        del self._running[group]
        head = self._heads.pop(group)
        if outcome == "left":
            # the failed one and those behind it all visible again one visibility timeout from now, together (the
            # failed one first in the batch): its group comes back in order; anything else of it arriving meanwhile
            # (where SQS would not lock the group) goes back until then too
            later = max(1, self._timeout_of(head))
            self._blocked[group] = (sqs_message_id(head), time.monotonic() + later)
            self._release_later(head, later)
            self._hand_back(group, lambda message: self._release_later(message, later))
        elif outcome != "deleted" or self._closing:
            self._hand_back(group, self._release)
        else:
            self._ready.append(group)
            if not self._starting:
                self._start_ready()

    def close(self) -> int:
        """Shutdown: from now on a group's next message is released instead of started (its running one finishes).
        Returns how many were released at once (waiting with nothing of their group on its way)."""
        self._closing = True
        return sum(self._hand_back(group, self._release) for group in list(self._waiting) if group not in self._running)

    def _hand_back(self, group: str, how: Callable[[Message], Any]) -> int:
        waiting = self._waiting.pop(group, None) or deque()
        for message, _ in waiting:
            self._group_of.pop(str(message.delivery_tag), None)
        released = 0
        for message, _ in waiting:
            if still_held(message):
                how(message)
                released += 1
        return released

    def _start_ready(self) -> None:
        # a loop, not recursion: a message settled at once (dropped) makes its group ready again while we are here
        self._starting = True
        try:
            while self._ready:
                group = self._ready.popleft()
                waiting = self._waiting.get(group)
                while waiting and group not in self._running:
                    message, route = waiting.popleft()
                    if not still_held(message):
                        self._group_of.pop(str(message.delivery_tag), None)
                        continue
                    self._running[group] = str(message.delivery_tag)
                    self._heads[group] = message
                    route(message)
                if waiting is not None and not waiting and self._waiting.get(group) is waiting:
                    del self._waiting[group]
        finally:
            self._starting = False
