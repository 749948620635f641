"""`eventbus cli_events` (stub: being written)."""

from __future__ import annotations

__all__ = ["run_publish", "run_tail"]


def run_publish(argv: list[str]) -> int:
    raise NotImplementedError


def run_tail(argv: list[str]) -> int:
    raise NotImplementedError
