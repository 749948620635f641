"""`eventbus cli_dlq` (stub: being written)."""

from __future__ import annotations

__all__ = ["run_dlq"]


def run_dlq(argv: list[str]) -> int:
    raise NotImplementedError
