"""eventbus's test kit, shipped in the wheel and usable after ``pip install eventbus`` (plus pytest).

* :class:`TestEventBus` (``from eventbus.testing import TestEventBus, Delivery``): a service's ``@subscribe``
  handlers and callback tasks run in the test's process: a fresh container per block, eager tasks, events delivered
  with a worker's fate (:class:`Delivery`) and ``bus.published`` holding what the block published.
* the pytest plugin (:mod:`eventbus.testing.plugin`, registered by the ``pytest11`` entry point): the ``event_bus``
  fixture (set ``eventbus_app = "myproject.celery:app"`` in the pytest configuration), and the opt-in live fixtures
  ``eventbus_emulator`` and ``eventbus_worker`` (:mod:`eventbus.testing.live`).
* :mod:`eventbus.testing.contracts`: the ports' contract suites, one per port; subclass one to prove an adapter,
  in this library or outside it, keeps its port's contract (``from eventbus.testing.contracts import
  DeduplicationStoreContract``).

Importing this package imports nothing else: :class:`TestEventBus` and :class:`Delivery` load Celery on first use,
and the suites need pytest and import it, so parts of the kit that need no pytest stay importable without it.
See docs/testing.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eventbus.testing.bus import Delivery, DeliveryFate, TestEventBus

__all__ = ["Delivery", "DeliveryFate", "TestEventBus", "contracts"]

_LAZY = {"Delivery", "DeliveryFate", "TestEventBus"}


def __getattr__(name: str) -> Any:
    """``TestEventBus``, ``Delivery`` and ``DeliveryFate``, imported on first use (they need Celery)."""
    if name in _LAZY:
        from eventbus.testing import bus

        return getattr(bus, name)
    if name == "contracts":
        import importlib

        return importlib.import_module("eventbus.testing.contracts")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
