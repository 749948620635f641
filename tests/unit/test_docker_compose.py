"""docker-compose.deps.yaml cannot run here (no Docker engine): check its structure instead."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.deps.yaml"


def load() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def test_services_ports_and_health_checks() -> None:
    services = load()["services"]
    assert set(services) == {"localstack", "postgres"}
    assert "4566:4566" in services["localstack"]["ports"]
    assert "5432:5432" in services["postgres"]["ports"]
    for name, service in services.items():
        check = service["healthcheck"]
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, name
        assert check["retries"] > 0, name


def test_localstack_runs_sns_and_sqs_in_the_seeds_region() -> None:
    env = load()["services"]["localstack"]["environment"]
    assert set(env["SERVICES"].split(",")) == {"sns", "sqs"}
    assert env["AWS_DEFAULT_REGION"] == "eu-west-2"


def test_postgres_offers_the_test_database_without_password() -> None:
    env = load()["services"]["postgres"]["environment"]
    assert env["POSTGRES_DB"] == "test"
    assert env["POSTGRES_HOST_AUTH_METHOD"] == "trust"
