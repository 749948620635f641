"""docs/django.md, followed literally by a new user: a fresh Django project in a temporary directory, the library's
wheel with the documented extras in a fresh virtualenv, every file block of the page written, every command run.

The page's fenced blocks drive it: ``bash step`` blocks are run line by line in the project directory, ``<lang>
file=PATH`` blocks are written to PATH, ``<lang> append=PATH`` blocks appended to it. The page's ``pip install`` is
the one thing not run as written (no network): the wheel is installed without dependencies, the host's site-packages
are put on the new interpreter's path, and ``pip install --no-index 'eventbus[<the page's extras>]'`` then proves the
extras' requirements are satisfied there. The project uses a PostgreSQL database of its own, created and dropped here.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import sysconfig
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "django.md"
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    """One fenced block of the page: its language, its info (``step``, ``file=...``, ``append=...``), its text."""

    language: str
    info: str
    text: str


def page_blocks() -> list[Block]:
    return [Block(lang, info.strip(), text) for lang, info, text in FENCE.findall(PAGE.read_text())]


def test_the_page_has_what_the_adoption_test_follows() -> None:
    blocks = page_blocks()
    infos = [block.info for block in blocks]
    assert "append=myproject/settings.py" in infos
    assert {"file=myproject/celery.py", "file=orders/tasks.py", "file=orders/test_events.py", "file=pytest.ini"} <= set(
        infos
    )
    assert sum(info == "step" for info in infos) >= 3
    assert installed_extras(blocks) >= {"sqs", "django"}


def installed_extras(blocks: list[Block]) -> set[str]:
    """The extras of the page's ``pip install 'eventbus[...]'``."""
    for block in blocks:
        found = re.search(r"pip install 'eventbus\[([\w,]+)\]'", block.text)
        if found:
            return set(found.group(1).split(","))
    raise AssertionError("docs/django.md has no pip install 'eventbus[...]' line")


def clean_environment(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without what would leak this repository or this test run into the project."""
    dropped = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE"}
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in dropped and not key.startswith(("PYTEST_", "EVENTBUS_"))
    }
    return environment | {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1"} | extra


def run(args: list[str] | str, cwd: Path, env: dict[str, str], timeout: float = 180) -> str:
    """Run a command (a shell line when ``args`` is a string); return its output, or fail the test showing it."""
    done = subprocess.run(
        args,
        cwd=cwd,
        env=env,
        shell=isinstance(args, str),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = done.stdout + done.stderr
    shown = args if isinstance(args, str) else shlex.join(args)
    assert done.returncode == 0, f"{shown} exited {done.returncode}:\n{output[-6000:]}"
    return output


@pytest.fixture(scope="module")
def database(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL database of the project's own (pytest-django makes ``test_<it>`` beside it)."""
    import psycopg

    name = f"eventbus_adoption_{uuid.uuid4().hex[:10]}"
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True) as connection:
            for database in (name, f"test_{name}"):
                connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv holding eventbus's wheel, with the page's extras satisfied; its ``bin`` directory."""
    work = tmp_path_factory.mktemp("adoption")
    env = clean_environment({})
    wheels = work / "wheels"
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(ROOT)],
        work,
        env,
    )
    [wheel] = sorted(wheels.glob("eventbus-*.whl"))
    home = work / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(home)], work, env)
    python = home / "bin" / "python"
    # the wheel first, before the host's packages are visible: so it is not taken for the editable install there
    run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        work,
        env,
    )
    target = Path(
        run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], work, env).strip()
    )
    host = dict.fromkeys(sysconfig.get_paths()[kind] for kind in ("purelib", "platlib"))
    (target / "_host_dependencies.pth").write_text("".join(f"{path}\n" for path in host))
    extras = ",".join(sorted(installed_extras(page_blocks())))
    # the page's pip install, offline: every requirement of the extras must already be satisfied
    output = run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-index",
            f"eventbus[{extras}]",
            "pytest-django",
        ],
        work,
        env,
    )
    assert "Successfully installed" not in output, output
    found = run([str(python), "-c", "import eventbus; print(eventbus.__file__)"], work, env)
    assert str(target) in found, f"eventbus resolves to {found.strip()}, not the wheel"
    return home / "bin"


def test_a_new_django_project_follows_the_page(venv: Path, database: str, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    env = clean_environment(
        {
            "PATH": os.pathsep.join([str(venv), str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            "ORDERS_DB_NAME": database,
            "PYTHONUNBUFFERED": "1",
        }
    )
    outputs: list[str] = []
    for block in page_blocks():
        if block.info == "step":
            for line in block.text.splitlines():
                if line.strip():
                    outputs.append(run(line, project, env, timeout=300))
        elif block.info.startswith("file="):
            path = project / block.info.removeprefix("file=")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block.text)
        elif block.info.startswith("append="):
            path = project / block.info.removeprefix("append=")
            path.write_text(path.read_text() + "\n" + block.text)
    everything = "\n".join(outputs)
    assert "System check identified no issues" in everything, everything[-4000:]
    assert re.search(r"\b4 passed\b", everything), everything[-4000:]

    # the same tests in the reverse order: no test sees another's events
    collected = run(
        ["python", "-m", "pytest", "-p", "no:randomly", "--collect-only", "-q", "orders/test_events.py"], project, env
    )
    ids = [line for line in collected.splitlines() if "::" in line]
    assert len(ids) == 4, collected
    reverse = run(["python", "-m", "pytest", "-p", "no:randomly", "-v", *reversed(ids)], project, env, timeout=300)
    ran = [line.split(" ")[0] for line in reverse.splitlines() if " PASSED" in line]
    assert sorted(ran) == sorted(ids), reverse[-4000:]
    # pytest-django runs database tests before the others whatever the order asked: compare the database tests' order
    in_process = [node for node in reversed(ids) if "real_worker" not in node]
    assert [node for node in ran if node in in_process] == in_process, reverse[-4000:]
