"""A missing optional dependency says which extra to install, instead of a bare ModuleNotFoundError."""

from __future__ import annotations

import importlib
import sys

import pytest


@pytest.mark.parametrize(
    ("package", "dependency", "extra"),
    [
        ("eventbus.adapters.aws", "boto3", "sqs"),
        ("eventbus.adapters.redis", "redis", "redis"),
        ("eventbus.adapters.sqlalchemy", "sqlalchemy", "sqlalchemy"),
        ("eventbus.adapters.django_orm", "django", "django"),
        ("eventbus.celery", "celery", "sqs"),
        ("eventbus.contrib.django", "django", "django"),
    ],
)
def test_a_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch, package: str, dependency: str, extra: str) -> None:
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, dependency, None)  # makes `import <dependency>` raise ImportError
    with pytest.raises(ImportError, match=rf"pip install 'eventbus\[{extra}\]'"):
        importlib.import_module(package)


def test_the_emulator_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from eventbus.emulator import EmulatorServer

    monkeypatch.setitem(sys.modules, "moto.server", None)
    with pytest.raises(ImportError, match=r"pip install 'eventbus\[emulator\]'"):
        EmulatorServer(port=0).start()
