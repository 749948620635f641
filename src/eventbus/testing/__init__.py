"""eventbus's test kit, shipped in the wheel and usable after ``pip install eventbus`` (plus pytest).

* :mod:`eventbus.testing.contracts`: the ports' contract suites, one per port; subclass one to prove an adapter,
  in this library or outside it, keeps its port's contract (``from eventbus.testing.contracts import
  DeduplicationStoreContract``).

The suites need pytest and import it; this package itself does not, so parts of the kit that need no pytest stay
importable without it.
"""

__all__ = ["contracts"]
