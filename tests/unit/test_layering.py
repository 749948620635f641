"""The architecture's import rules (docs/architecture.md), enforced on the source tree.

* core imports no adapter, no runtime, no container and no vendor library (pydantic is its modelling language);
* ``eventbus.ports`` and ``eventbus.errors`` import only the core;
* adapters import core and ports, never each other;
* ``eventbus.celery`` reaches SQS only through ``eventbus.adapters.aws`` (and kombu's own client): no boto3/botocore
  import anywhere in it, the transport included;
* the shipped test kit needs nothing of this repository's ``tests/``;
* every package declares ``__all__``; no module passes 400 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "eventbus"
VENDORS = ("celery", "kombu", "django", "sqlalchemy", "boto3", "botocore", "moto", "redis", "dependency_injector")
MAX_LINES = 400


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def files(where: Path) -> list[Path]:
    return sorted(where.rglob("*.py")) if where.is_dir() else [where]


def relative(path: Path) -> str:
    return str(path.relative_to(SRC))


@pytest.mark.parametrize("path", files(SRC / "core"), ids=relative)
def test_core_imports_no_adapter_runtime_or_vendor(path: Path) -> None:
    bad = {
        name
        for name in imports(path)
        if name.startswith(("eventbus.adapters", "eventbus.celery", "eventbus.container", "eventbus.testing"))
        or name.split(".")[0] in VENDORS
    }
    assert not bad, f"{relative(path)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", [SRC / "ports.py", SRC / "errors.py"], ids=relative)
def test_ports_and_errors_import_only_the_core(path: Path) -> None:
    bad = {
        name
        for name in imports(path)
        if (name.startswith("eventbus.") and not name.startswith(("eventbus.core.", "eventbus.errors")))
        or name.split(".")[0] in VENDORS
    }
    assert not bad, f"{relative(path)} imports {sorted(bad)}"


def adapter_of(path: Path) -> str:
    """The adapter a file belongs to: the package (or module) directly under ``adapters/``."""
    return path.relative_to(SRC / "adapters").parts[0].removesuffix(".py")


@pytest.mark.parametrize("path", files(SRC / "adapters"), ids=relative)
def test_adapters_import_core_never_each_other(path: Path) -> None:
    own = f"eventbus.adapters.{adapter_of(path)}"
    bad = {
        name
        for name in imports(path)
        if (name.startswith("eventbus.adapters.") and name != own and not name.startswith(own + "."))
        or name.startswith(("eventbus.celery", "eventbus.container", "eventbus.testing", "eventbus.emulator"))
    }
    assert not bad, f"{relative(path)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", files(SRC / "celery"), ids=relative)
def test_celery_reaches_sqs_only_through_the_aws_adapter(path: Path) -> None:
    bad = {name for name in imports(path) if name.split(".")[0] in ("boto3", "botocore")}
    assert not bad, f"{relative(path)} imports {sorted(bad)}: call SQS through eventbus.adapters.aws"


@pytest.mark.parametrize("path", files(SRC / "testing"), ids=relative)
def test_the_shipped_test_kit_needs_nothing_of_this_repository(path: Path) -> None:
    bad = {name for name in imports(path) if name.split(".")[0] in ("tests", "bench", "examples")}
    assert not bad, f"{relative(path)} imports {sorted(bad)}"


@pytest.mark.parametrize(
    "path", [p for p in sorted(SRC.rglob("__init__.py")) if "migrations" not in p.parts], ids=relative
)
def test_every_package_declares_its_public_names(path: Path) -> None:
    names = {
        target.id
        for node in ast.parse(path.read_text()).body
        for target in (node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)])
        if isinstance(target, ast.Name)
    }
    declared = "__all__" in names
    assert declared, f"{relative(path)} has no __all__"


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=relative)
def test_no_module_passes_400_lines(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{relative(path)} has {lines} lines: split it by concern"


@pytest.mark.parametrize("path", files(SRC), ids=relative)
def test_only_the_opentelemetry_api_and_only_in_its_adapter(path: Path) -> None:
    """The application chooses the SDK; the runtime reaches OpenTelemetry only through ``adapters/otel``."""
    found = {name for name in imports(path) if name.split(".")[0] == "opentelemetry"}
    assert not any(name.startswith("opentelemetry.sdk") for name in found), f"{relative(path)} imports the SDK"
    if found:
        assert relative(path).startswith("adapters/otel/"), f"{relative(path)} imports {sorted(found)}"
