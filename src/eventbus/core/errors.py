"""Deprecated path: the errors live in :mod:`eventbus.errors` (kept importable here for one release)."""

import warnings

from eventbus.errors import *  # noqa: F403  (every name of eventbus.errors, for one release)
from eventbus.errors import __all__ as __all__

warnings.warn("eventbus.core.errors is deprecated: import from eventbus.errors", DeprecationWarning, stacklevel=2)
