"""The architecture's import rules: core imports no adapter or runtime; adapters import core, never each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "eventbus"
THIRD_PARTY_RUNTIMES = ("celery", "kombu", "django", "sqlalchemy", "boto3", "botocore", "moto")


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", sorted((SRC / "core").glob("*.py")), ids=lambda p: p.name)
def test_core_imports_no_adapter_and_no_runtime(path: Path) -> None:
    bad = {
        name
        for name in imports(path)
        if name.startswith(("eventbus.adapters", "eventbus.celery", "eventbus.container"))
        or name.split(".")[0] in THIRD_PARTY_RUNTIMES
    }
    assert not bad, f"{path.name} imports {sorted(bad)}"


def adapter_of(path: Path) -> str:
    """The adapter a file belongs to: its module, or the package directly under ``adapters/``."""
    relative = path.relative_to(SRC / "adapters")
    return relative.parts[0].removesuffix(".py")


@pytest.mark.parametrize(
    "path", sorted((SRC / "adapters").rglob("*.py")), ids=lambda p: str(p.relative_to(SRC / "adapters"))
)
def test_adapters_import_core_never_each_other(path: Path) -> None:
    own = f"eventbus.adapters.{adapter_of(path)}"
    others = {
        name
        for name in imports(path)
        if name.startswith("eventbus.adapters") and name != own and not name.startswith(own + ".")
    }
    assert not others, f"{path.name} imports {sorted(others)}"
