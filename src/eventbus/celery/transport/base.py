"""What the channel's concerns share: its state, declared once, and the seams one concern offers another.

Each concern (receiving, visibility, settling, acknowledging, shutdown) is a mixin over :class:`ChannelBase`; an
attribute is set by the concern named beside it, in that concern's ``_init_*``. A method one concern calls on another
is abstract here, so a channel missing one fails when it is built, not when the call comes.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import Any

from kombu.transport import SQS

from eventbus.adapters.aws.sqs import SqsQueues
from eventbus.celery.acks import SqsSettlement
from eventbus.celery.transport.batching import BatchBuffer, Entry
from eventbus.celery.transport.heartbeat import Backoff, VisibilityHeartbeat


class ChannelBase(SQS.Channel, SqsSettlement):
    """kombu's SQS channel as eventbus's channel concerns see it."""

    # the channel (channel.py)
    sqs_queues: SqsQueues
    # receiving
    _parked: set[str]
    _receive_backoff: Backoff
    _last_outage_log: float
    #: Wall-clock time (``time.time()``) of the last receive SQS answered; ``None`` before the first.
    last_received_at: float | None
    #: Queue -> wall-clock time its receives began failing; empty while SQS answers every queue.
    unreachable: dict[str, float]
    # visibility
    _heartbeat_enabled: bool
    _heartbeat: VisibilityHeartbeat
    _heartbeat_timer: Any
    _heartbeat_interval: float
    _unheld_queues: set[str]
    # acknowledging
    _deletes: BatchBuffer
    _visibility: BatchBuffer
    _flush_timer: Any
    _retry_window: float
    _last_ack_failure_log: float
    # shutdown
    #: Set by the consumer: is the message with this delivery tag being run by a task right now?
    in_progress: Callable[[str], bool] | None

    # -- receiving offers ------------------------------------------------------------------------------------

    @abstractmethod
    def _slot_freed(self) -> None:
        """A prefetch slot was freed: poll the queues parked on a full prefetch window again."""

    # -- visibility offers -----------------------------------------------------------------------------------

    @abstractmethod
    def _watch_received(self, queue: str, q_url: str, messages: list[dict[str, Any]]) -> None:
        """Keep the messages of a receive invisible to other consumers while they are held."""

    @abstractmethod
    def held(self) -> list[str]:
        """Delivery tags of the messages this channel holds: delivered, neither acknowledged nor rejected."""

    @abstractmethod
    def _extensions_answered(self, batch: list[Entry], refused_ids: set[str]) -> None:
        """SQS answered a batch: confirmed extensions move their message's deadline, refused ones are due again."""

    @abstractmethod
    def _extensions_failed(self, batch: list[Entry]) -> None:
        """A batch call failed: its extensions are due again, soon."""

    # -- settling offers -------------------------------------------------------------------------------------

    @abstractmethod
    def change_visibility(self, delivery_info: dict[str, Any], seconds: int) -> None:
        """Buffer a visibility change (0 releases the message now) for a ``ChangeMessageVisibilityBatch``."""

    # -- acknowledging offers --------------------------------------------------------------------------------

    @abstractmethod
    def _buffer(self, buffer: BatchBuffer, queue_url: str, entry: Entry) -> None:
        """Buffer one delete or visibility change; send the batch it completes."""
