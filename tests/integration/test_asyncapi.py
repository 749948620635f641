"""``eventbus asyncapi -A app`` as a subprocess, its document judged by the AsyncAPI project's own parser
(``@asyncapi/parser``, installed in ``tools/asyncapi`` by ``make install``): no error, and the channels, operations and
messages name the app's events. Skips when node or the parser is missing, and fails under ``CI=true``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import IN_CI

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.integration.asyncapi_app"
VALIDATOR = ROOT / "tools" / "asyncapi" / "validate.mjs"
PARSER = ROOT / "tools" / "asyncapi" / "node_modules" / "@asyncapi" / "parser" / "package.json"
# not imported from the app: importing it would register its shared tasks in every Celery app of this process
SUBSCRIBED = {"asyncapiOrderPlaced", "asyncapiCustomerRegistered", "asyncapiStockCounted"}
PUBLISHED = {"asyncapiInvoiceSent", "asyncapiInvoiceFailed", "asyncapiShopOpened"}


@pytest.fixture(scope="module")
def node() -> str:
    """The node executable, with the AsyncAPI parser installed; skips (fails under CI) without them."""
    found = shutil.which("node")
    missing = None if found else "node is not on PATH"
    if found and not PARSER.exists():
        missing = f"the AsyncAPI parser is not installed in {PARSER.parents[2]} (run make install: npm ci there)"
    if missing:
        if IN_CI:
            pytest.fail(f"{missing} (CI=true: node 20 and `make install` are required)")
        pytest.skip(missing)
    assert found is not None
    return found


def asyncapi(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m eventbus.cli asyncapi ARGS`` with these ``EVENTBUS_*`` settings and no others."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("EVENTBUS_")}
    env.update(settings, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])))
    return subprocess.run(
        [sys.executable, "-m", "eventbus.cli", "asyncapi", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def validate(node: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node, str(VALIDATOR), str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def generated(tmp_path: Path, unique: str, fmt: str = "json") -> tuple[Path, dict[str, Any]]:
    path = tmp_path / f"asyncapi.{fmt}"
    result = asyncapi(
        "-A",
        APP,
        "-o",
        str(path),
        "--format",
        fmt,
        "--service-version",
        "1.4.0",
        EVENTBUS_SERVICE="shop",
        EVENTBUS_ENVIRONMENT="itest",
        EVENTBUS_TOPIC=f"shop-{unique}",
        EVENTBUS_QUEUE_NAME=f"shop-{unique}-queue",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # the document went to the file
    text = path.read_text(encoding="utf-8")
    document = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    assert isinstance(document, dict)
    return path, document


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_the_asyncapi_parser_accepts_the_document(node: str, tmp_path: Path, unique: str, fmt: str) -> None:
    path, _ = generated(tmp_path, unique, fmt)
    verdict = validate(node, path)
    assert verdict.returncode == 0, verdict.stderr
    assert "error:" not in verdict.stderr
    assert "valid AsyncAPI 3.0.0" in verdict.stdout


def test_the_validator_rejects_a_broken_document(node: str, tmp_path: Path, unique: str) -> None:
    """The verdict above can fail: an operation sending a message its channel does not carry is an error."""
    path, document = generated(tmp_path, unique)
    operation = next(op for op in document["operations"].values() if op["action"] == "send")
    operation["messages"] = [{"$ref": "#/channels/queue/messages/asyncapiStockCounted"}]
    path.write_text(json.dumps(document), encoding="utf-8")
    verdict = validate(node, path)
    assert verdict.returncode == 1
    assert "error: operations." in verdict.stderr


def test_the_document_names_the_app_events(tmp_path: Path, unique: str) -> None:
    _, document = generated(tmp_path, unique)
    assert document["info"]["title"] == "shop"
    assert document["info"]["version"] == "1.4.0"
    topic, queue = document["channels"]["topic"], document["channels"]["queue"]
    assert topic["address"] == f"shop-{unique}"
    assert queue["address"] == f"shop-{unique}-queue"
    messages = document["components"]["messages"]
    assert {message["name"] for message in messages.values()} == SUBSCRIBED | PUBLISHED
    assert set(topic["messages"]) == PUBLISHED
    assert set(queue["messages"]) == SUBSCRIBED
    actions = {
        (operation["action"], operation["messages"][0]["$ref"].rsplit("/", 1)[-1])
        for operation in document["operations"].values()
    }
    assert actions == {("send", event) for event in PUBLISHED} | {("receive", event) for event in SUBSCRIBED}

    schemas = document["components"]["schemas"]
    # nested models and enums hoisted, aliases on the wire
    assert {"Money", "Line", "Currency", "Priority", "AsyncapiOrderPlacedPayload"} <= set(schemas)
    assert {"orderId", "lines", "total", "priority", "deliveryDate"} == set(
        schemas["AsyncapiOrderPlacedPayload"]["properties"]
    )
    assert schemas["Currency"]["enum"] == ["EUR", "GBP"]
    assert messages["asyncapiStockCounted"]["payload"]["type"] == "object"  # no payload class: free-form
    assert messages["asyncapiInvoiceFailed"]["payload"]["$ref"].endswith("/AsyncapiInvoiceFailedPayload")
    registered = messages["asyncapiCustomerRegistered"]
    assert registered["tags"] == [{"name": "containsPersonalData", "description": "The payload carries personal data."}]
    authorization = schemas["Metadata"]["properties"]["authorization"]
    assert not {"example", "examples", "default"} & set(authorization)


def test_stdout_is_the_default_output(tmp_path: Path) -> None:
    result = asyncapi("-A", APP, EVENTBUS_SERVICE="shop")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["asyncapi"] == "3.0.0"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["-A", "tests.integration.no_such_app", "-o", "{out}"], "cannot load the Celery app"),
        (["-A", APP, "--format", "xml", "-o", "{out}"], "unknown format 'xml': use json or yaml"),
        (["-A", APP, "--format", "json", "-o", "/nonexistent-dir/asyncapi.json"], "cannot write"),
        (["--format", "json"], "the following arguments are required: -A/--app"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(tmp_path: Path, args: list[str], says: str) -> None:
    output = tmp_path / "out.json"
    result = asyncapi(*(str(output) if a == "{out}" else a for a in args), EVENTBUS_SERVICE="shop")
    assert result.returncode == 2
    assert says in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not output.exists()
