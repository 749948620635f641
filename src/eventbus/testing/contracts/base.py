"""What every contract suite shares: the collection rule (see :mod:`eventbus.testing.contracts`)."""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = ["Contract"]


class Contract:
    """Base of the contract suites: collected by pytest only in a subclass whose name starts with ``Test``."""

    __test__: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # pytest collects any class whose __test__ is True, whatever its name: decide by the name instead
        super().__init_subclass__(**kwargs)
        if "__test__" not in cls.__dict__:
            cls.__test__ = cls.__name__.startswith("Test")
