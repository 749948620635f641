"""eventbus: typed events over SNS/SQS, consumed by Celery workers; hexagonal core, pluggable adapters.

One documented import path per name (docs/architecture.md):

* here: :class:`Envelope`, :class:`Metadata`, :func:`decode_message_body`, :class:`EventPublisher`,
  :class:`Outgoing`, :class:`EventBusSettings`;
* :mod:`eventbus.payload`: ``EventPayload``, ``EventFailPayload`` (the seed's path);
* :mod:`eventbus.celery`: ``subscribe``, ``SQSConsumer``, ``configure``; :mod:`eventbus.celery.tasks`: the callback
  task bases;
* :mod:`eventbus.ports`: every port; :mod:`eventbus.errors`: every error;
* :mod:`eventbus.container`: the wiring; :mod:`eventbus.adapters`: one package per technology;
  :mod:`eventbus.testing`: the contract suites.

Names that used to be importable from here too (the errors, the payload bases) still are, for one release, with a
``DeprecationWarning`` naming their path.
"""

from __future__ import annotations

import warnings
from typing import Any

from eventbus.core.envelope import Envelope, Metadata, decode_message_body
from eventbus.core.publishing import EventPublisher, Outgoing
from eventbus.settings import EventBusSettings

__all__ = [
    "Envelope",
    "EventBusSettings",
    "EventPublisher",
    "Metadata",
    "Outgoing",
    "decode_message_body",
]

_MOVED = {
    "ConfigurationError": "eventbus.errors",
    "EntityNotFound": "eventbus.errors",
    "EnvelopeError": "eventbus.errors",
    "EnvelopeRejection": "eventbus.errors",
    "EventBusError": "eventbus.errors",
    "PublishError": "eventbus.errors",
    "RepositoryError": "eventbus.errors",
    "SubscriptionError": "eventbus.errors",
    "EventPayload": "eventbus.payload",
    "EventFailPayload": "eventbus.payload",
}


def __getattr__(name: str) -> Any:
    """The former top-level names, for one release."""
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module 'eventbus' has no attribute {name!r}")
    import importlib

    warnings.warn(f"import {name} from {module}: eventbus.{name} goes away in the next release", DeprecationWarning, 2)
    return getattr(importlib.import_module(module), name)
