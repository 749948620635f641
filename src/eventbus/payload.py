"""Payload base classes (the seed's import path ``eventbus.payload``)."""

from eventbus.core.payload import EventFailPayload, EventPayload

__all__ = ["EventFailPayload", "EventPayload"]
