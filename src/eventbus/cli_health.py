"""`eventbus cli_health` (stub: being written)."""

from __future__ import annotations

__all__ = ["run_health"]


def run_health(argv: list[str]) -> int:
    raise NotImplementedError
