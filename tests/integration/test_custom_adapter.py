"""A third party can prove its adapter with the shipped contract suites, from wheels alone.

Builds wheels of eventbus and of ``examples/custom_adapter`` (a SQLite DeduplicationStore packaged on its own),
installs both into a fresh virtualenv and runs the example's tests there, from a directory outside this repository,
so nothing of this repository's ``src/`` or ``tests/`` can be imported. eventbus's dependencies come from this
interpreter's site-packages through a ``.pth`` file of plain path lines: those do not run that directory's own
``.pth`` files, so this repository's editable install of eventbus stays invisible, and nothing is downloaded.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "custom_adapter"


def clean_environment() -> dict[str, str]:
    """This process's environment without what would leak this repository or this test run into a child."""
    dropped = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE"}
    environment = {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("PYTEST_")}
    environment |= {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1"}
    return environment


def run(args: Sequence[str | Path], cwd: Path, timeout: float = 120) -> str:
    """Run ``args``; return their output, or fail the test showing it."""
    done = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(map(str, args))} exited {done.returncode}:\n{output[-4000:]}"
    return output


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv holding the two wheels, with this interpreter's site-packages as a plain path; its python."""
    work = tmp_path_factory.mktemp("custom-adapter")
    wheels = work / "wheels"
    for project in (ROOT, EXAMPLE):
        run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheels, project],
            cwd=work,
        )
    built = sorted(wheels.glob("*.whl"))
    assert [wheel.name.split("-")[0] for wheel in built] == ["eventbus", "eventbus_sqlite_dedup"]

    home = work / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", home], cwd=work)
    python = home / "bin" / "python"
    # pip installs into the new interpreter; before the .pth exists, so it sees no other eventbus there
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", *built], cwd=work)

    target = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=work).strip())
    ours = dict.fromkeys(sysconfig.get_paths()[kind] for kind in ("purelib", "platlib"))
    (target / "_eventbus_host_dependencies.pth").write_text("".join(f"{path}\n" for path in ours))
    return python


def test_eventbus_resolves_to_the_installed_wheel_not_this_repository(venv: Path, tmp_path: Path) -> None:
    found = run(
        [venv, "-c", "import eventbus.testing.contracts, eventbus_sqlite_dedup; print(eventbus.__file__)"],
        cwd=tmp_path,
    ).strip()
    site_packages = venv.parent.parent / "lib"
    assert Path(found).is_relative_to(site_packages), found
    assert not Path(found).is_relative_to(ROOT), found


def test_the_example_adapter_passes_the_shipped_contract_suite(venv: Path, tmp_path: Path) -> None:
    assert not tmp_path.resolve().is_relative_to(ROOT)
    output = run([venv, "-m", "pytest", "-q", "-p", "no:cacheprovider", EXAMPLE / "tests"], cwd=tmp_path)
    summary = re.search(r"(\d+) passed", output)
    assert summary is not None, output[-4000:]
    assert int(summary.group(1)) > 0
    assert "failed" not in output.splitlines()[-1], output[-4000:]
