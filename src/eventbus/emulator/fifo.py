"""Corrections to moto's SQS FIFO, so the embedded emulator delivers a message group as SQS does.

1. A message whose visibility timeout ran out is no longer in flight, but moto keeps counting it among the "pending"
   messages that lock its group until a receive happens to scan past it; and its scan can deliver a later message of
   a group while an earlier one is still in flight. After a consumer dies holding messages 8 and 9 of a group, moto
   could deliver 9 (or 10) before 8. Here, before each receive, messages visible again are no longer in flight, and
   a group with a message in flight delivers nothing (its later messages are hidden for that receive), as on SQS.
2. A long poll takes the groups in flight when it starts for its whole wait: a group that a delete unlocks meanwhile
   waits for the next receive. Here a long poll is a series of short receives, each judging the groups afresh, with a
   wait of at most 50 ms on new messages in between.
3. Receives run concurrently, one thread per request: one could deliver message 10 of a group while another, at the
   same moment, takes 9 back into flight. Here the short receives run one at a time, as SQS's are atomic.

They are idempotent patches of moto's classes in this process (the emulator runs moto in a thread of its own process).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Final

#: The longest pause between the short receives of one long poll, seconds.
_POLL_STEP: Final = 0.05
#: One short receive at a time (they take milliseconds; the waits between them are outside it).
_RECEIVING: Final = threading.Lock()


def _hide_behind_in_flight(queue: Any) -> list[tuple[Any, Any]]:
    """Hide (as delayed, for one receive) the messages of every group with one in flight (all of them, the in-flight
    ones too), after forgetting as in flight the messages visible again; return what was hidden, to put back."""
    from moto.core.utils import unix_time_millis

    for message in [m for m in queue._pending_messages if m.visible]:
        queue._pending_messages.discard(message)
    in_flight = {m.group_id for m in queue._pending_messages if m.group_id is not None}
    hidden: list[tuple[Any, Any]] = []
    later = unix_time_millis() + 3_600_000
    for message in queue._messages:
        group = message.group_id
        if group is None:
            continue
        if group not in in_flight and not message.visible:
            in_flight.add(group)
        if group in in_flight:
            # every message of the group, the in-flight ones too: one whose visibility runs out during the receive
            # must not be taken as the group's next
            hidden.append((message, message.delayed_until))
            message.delayed_until = later
    return hidden


def patch_sqs_fifo() -> None:
    """Apply the corrections (once)."""
    from moto.sqs.models import Queue, SQSBackend

    if getattr(SQSBackend.receive_message, "_eventbus_patched", False):
        return

    def pending_message_groups(self: Any) -> set[str]:
        return {m.group_id for m in self._pending_messages if m.group_id is not None and not m.visible}

    Queue.pending_message_groups = property(pending_message_groups)  # type: ignore[method-assign,assignment]
    original = SQSBackend.receive_message

    def receive_message(
        self: Any,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> Any:
        deadline = time.monotonic() + (wait_seconds_timeout or 0)
        queue = self.get_queue(queue_name)
        undeliverable = False
        while True:
            with _RECEIVING:
                hidden = _hide_behind_in_flight(queue) if queue.fifo_queue else []
                try:
                    found = original(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
                finally:
                    for message, delayed_until in hidden:
                        message.delayed_until = delayed_until
            left = deadline - time.monotonic()
            if found or left <= 0:
                return found
            step = min(_POLL_STEP, left)
            if undeliverable:  # visible messages, all waiting for their group: the wait below would not wait
                time.sleep(step)
            began = time.monotonic()
            queue.wait_for_messages(step)
            undeliverable = time.monotonic() - began < step / 2

    receive_message._eventbus_patched = True  # type: ignore[attr-defined]
    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]
