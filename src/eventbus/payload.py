"""Payload base classes (the seed's import path ``eventbus.payload``), and :func:`publishes`, which declares the
classes a service publishes for its AsyncAPI document."""

from eventbus.core.payload import EventFailPayload, EventPayload, publishes

__all__ = ["EventFailPayload", "EventPayload", "publishes"]
