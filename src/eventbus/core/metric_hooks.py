"""Metric hooks of :class:`eventbus.core.telemetry.Telemetry` (no-op here; the OpenTelemetry adapter records them).

Every hook takes names and numbers only (never a payload, never metadata values other than the event name), returns
nothing and must not raise. ``queue`` is the SQS queue's name, ``event_name`` the event's ``metadata.eventName``.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["MetricHooks"]


class MetricHooks:
    """Where the runtime reports counts, durations and sizes."""

    @property
    def recording(self) -> bool:
        """False while every hook is a no-op, so a caller may skip computing what it would report. By default: whether
        this class overrides any hook (an adapter that records only sometimes says when)."""
        cls = type(self)
        overrides = _OVERRIDES.get(cls)
        if overrides is None:
            hooks = [name for name, value in vars(MetricHooks).items() if callable(value) and not name.startswith("_")]
            overrides = _OVERRIDES[cls] = any(getattr(cls, name) is not getattr(MetricHooks, name) for name in hooks)
        return overrides

    def event_settled(self, *, event_name: str, queue: str, outcome: str, reason: str = "") -> None:
        """One event's fate on a worker: ``outcome`` is ``handled``, ``failed`` (left for redelivery),
        ``dead-lettered`` (``reason``: the reason's kind, e.g. ``invalid-payload``) or ``dropped``."""

    def handler_duration(self, *, event_name: str, queue: str, seconds: float, succeeded: bool) -> None:
        """How long one handler run took."""

    def end_to_end_lag(self, *, event_name: str, queue: str, seconds: float) -> None:
        """Handled time minus the event's ``publishDate``."""

    def batch_sent(self, *, operation: str, size: int) -> None:
        """One batch call: ``operation`` is ``delete`` (DeleteMessageBatch) or ``publish`` (PublishBatch)."""

    def visibility_extended(self, *, queue: str, count: int) -> None:
        """The heartbeat extended the visibility of ``count`` held messages."""

    def outbox_relayed(self, *, count: int, lag_seconds: list[float]) -> None:
        """A relay pass sent ``count`` events; ``lag_seconds``: each one's time from being stored to being sent."""

    def observe_outbox_backlog(self, read: Callable[[], int | None]) -> None:
        """Register ``read`` (events waiting in the outbox, ``None`` if unknown) to be observed periodically."""

    def dedup_hit(self, *, handler: str) -> None:
        """An idempotent handler's event was handled already: the duplicate was acknowledged without running."""


#: Whether a class overrides any hook, by class (computed on its first :attr:`MetricHooks.recording`).
_OVERRIDES: dict[type, bool] = {}
