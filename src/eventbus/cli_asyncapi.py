"""`eventbus cli_asyncapi` (stub: being written)."""

from __future__ import annotations

__all__ = ["run_asyncapi"]


def run_asyncapi(argv: list[str]) -> int:
    raise NotImplementedError
