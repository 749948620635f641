"""Deprecated path: the ports live in :mod:`eventbus.ports` (kept importable here for one release)."""

import warnings

from eventbus.ports import EntityRepository, Publisher

__all__ = ["EntityRepository", "Publisher"]

warnings.warn("eventbus.core.ports is deprecated: import from eventbus.ports", DeprecationWarning, stacklevel=2)
