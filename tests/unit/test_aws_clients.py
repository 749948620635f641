"""The AWS clients' credentials: configured keys, else boto3's chain, else ``test``/``test`` for an emulator endpoint.

Building a client connects to nothing; the credentials a client signs with are read from its request signer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from eventbus.adapters.aws.clients import boto_client, sns_client, sqs_client
from eventbus.emulator import EmulatorServer
from eventbus.settings import EventBusSettings

BOTH: list[Callable[[EventBusSettings], Any]] = [sns_client, sqs_client]
CHAIN_KEY = "AKIACHAINFROMENVIRON"
CHAIN_SECRET = "chain-secret"


@pytest.fixture(autouse=True)
def chain_from_the_environment_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """boto3's chain finds the environment's keys and nothing else (no profile, no config file, no role)."""
    for name in (
        "EVENTBUS_ENDPOINT_URL",
        "EVENTBUS_SNS_ENDPOINT_URL",
        "EVENTBUS_ACCESS_KEY_ID",
        "EVENTBUS_SECRET_ACCESS_KEY",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CHAIN_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CHAIN_SECRET)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def credentials(client: Any) -> tuple[str, str]:
    """The key and secret the client signs its requests with."""
    frozen = client._request_signer._credentials.get_frozen_credentials()
    return frozen.access_key, frozen.secret_key


@pytest.mark.parametrize("build", BOTH, ids=["sns", "sqs"])
@pytest.mark.parametrize("endpoint", [None, "http://127.0.0.1:9"], ids=["aws", "endpoint"])
def test_configured_credentials_are_used(build: Callable[[EventBusSettings], Any], endpoint: str | None) -> None:
    settings = EventBusSettings(
        endpoint_url=endpoint, access_key_id="AKIACONFIGURED", secret_access_key="configured-secret"
    )
    assert credentials(build(settings)) == ("AKIACONFIGURED", "configured-secret")


@pytest.mark.parametrize("build", BOTH, ids=["sns", "sqs"])
def test_without_keys_or_endpoint_the_chain_supplies_them(build: Callable[[EventBusSettings], Any]) -> None:
    client = build(EventBusSettings())
    assert credentials(client) == (CHAIN_KEY, CHAIN_SECRET)
    assert client._request_signer._credentials.method == "env"
    assert client.meta.region_name == "eu-west-2"


@pytest.mark.parametrize("build", BOTH, ids=["sns", "sqs"])
@pytest.mark.parametrize("variable", ["endpoint_url", "sns_endpoint_url"])
def test_an_endpoint_without_keys_gets_test_credentials(
    build: Callable[[EventBusSettings], Any], variable: str
) -> None:
    client = build(EventBusSettings(**{variable: "http://127.0.0.1:9"}))
    assert credentials(client) == ("test", "test")


def test_each_client_goes_to_its_endpoint() -> None:
    settings = EventBusSettings(endpoint_url="http://127.0.0.1:9", sns_endpoint_url="http://127.0.0.1:8")
    assert sns_client(settings).meta.endpoint_url == "http://127.0.0.1:8"
    assert sqs_client(settings).meta.endpoint_url == "http://127.0.0.1:9"


def test_explicit_arguments_build_a_client_without_settings() -> None:
    given = boto_client(
        "sqs", region="us-east-1", endpoint_url="http://127.0.0.1:9", access_key_id="AKIAGIVEN", secret_access_key="s"
    )
    assert credentials(given) == ("AKIAGIVEN", "s")
    assert (given.meta.region_name, given.meta.endpoint_url) == ("us-east-1", "http://127.0.0.1:9")
    chained = boto_client("sns", region="eu-west-1")
    assert credentials(chained) == (CHAIN_KEY, CHAIN_SECRET)
    assert chained.meta.endpoint_url == "https://sns.eu-west-1.amazonaws.com"


def test_the_emulators_clients_carry_test_credentials_and_its_endpoint() -> None:
    server = EmulatorServer(port=9, region="us-west-2")  # not started: building a client connects to nothing
    for service in ("sns", "sqs"):
        client = server.client(service)
        assert credentials(client) == ("test", "test")
        assert (client.meta.region_name, client.meta.endpoint_url) == ("us-west-2", "http://127.0.0.1:9")
