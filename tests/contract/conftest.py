"""Fixtures shared by the contract suites."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def django_ready(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Django configured once per test process with the test project (SQLite file, plus a PostgreSQL alias)."""
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django_project.settings")
    os.environ.setdefault("EVENTBUS_TEST_SQLITE", str(tmp_path_factory.mktemp("django") / "contract.sqlite3"))
    import django

    django.setup()
