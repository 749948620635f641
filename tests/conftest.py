"""Shared fixtures: the SNS/SQS endpoint (embedded emulator or an external one), service checks, unique names.

Tests that need a service skip with a reason when it is absent, except under ``CI=true``,
where they fail: CI starts every service the suite needs.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import Worker, make_topology, start_worker

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# Task messages run from the queue only when signed (eventbus.celery.trust): the test process, which sends tasks, and
# the workers it starts (they inherit the environment) share one key.
os.environ.setdefault("EVENTBUS_SIGNING_KEY", "eventbus-test-signing-key")

#: Run the integration suite against an external SNS/SQS (e.g. LocalStack) instead of the embedded emulator.
EXTERNAL_ENDPOINT = os.environ.get("EVENTBUS_TEST_ENDPOINT_URL", "")
REGION = "eu-west-2"
POSTGRES_URL = os.environ.get("EVENTBUS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("EVENTBUS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


#: The test modules that use PostgreSQL. They share the ``test`` database (Django migrations, the outbox tables,
#: schemas of fixed names), so under pytest-xdist they all run in one test process, one after the other; a module
#: that uses PostgreSQL and is not listed here stops the run at collection (see pytest_collection_modifyitems).
POSTGRES_MODULES = frozenset(
    {
        "tests/contract/test_dedup.py",
        "tests/contract/test_outbox.py",
        "tests/contract/test_repository.py",
        "tests/integration/test_callback_tasks.py",
        "tests/integration/test_claim_check.py",
        "tests/integration/test_delivery_guarantees.py",
        "tests/integration/test_django_adoption.py",
        "tests/integration/test_django_contrib.py",
        "tests/integration/test_idempotency.py",
        "tests/integration/test_outbox.py",
        "tests/integration/test_testing_kit.py",
        "tests/integration/test_thread_pool.py",
        "tests/integration/test_tracing.py",
    }
)


def xdist_group_of(nodeid: str) -> str:
    """The group a test runs in under pytest-xdist: ``postgresql`` for :data:`POSTGRES_MODULES`, else its module."""
    module = nodeid.split("::", 1)[0]
    return "postgresql" if module in POSTGRES_MODULES else module


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse to run a test that uses PostgreSQL (its ``postgres`` marker or ``postgres_url`` fixture) from a module
    missing from :data:`POSTGRES_MODULES`: under pytest-xdist it would race the others on the shared database."""
    unlisted = sorted(
        {
            item.nodeid.split("::", 1)[0]
            for item in items
            if (item.get_closest_marker("postgres") is not None or "postgres_url" in getattr(item, "fixturenames", ()))
            and xdist_group_of(item.nodeid) != "postgresql"
        }
    )
    if unlisted:
        raise pytest.UsageError(
            f"these modules use PostgreSQL: add them to POSTGRES_MODULES in tests/conftest.py: {unlisted}"
        )


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # pytest-xdist's hook; before its own scheduler is made
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``make test`` (``pytest -n 2``): a module's tests in one test process (its module fixtures set up once), and
    every module of :data:`POSTGRES_MODULES` in one process. (pytest-xdist's ``--dist loadgroup`` would do this from
    markers, but with pytest 9.2 its groups silently never reach the scheduler: pytest-dev/pytest-xdist#1386.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group_of(nodeid)

    return ByGroup(config, log)


def service_missing(what: str) -> None:
    """Skip the test (fail it under CI) because ``what`` is not available."""
    message = f"{what} is not available"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: services must be running)")
    pytest.skip(message)


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@pytest.fixture
def unique() -> str:
    """A short unique suffix for queue, topic and event names."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def sns_sqs_endpoint() -> Iterator[str]:
    """The SNS/SQS endpoint URL: the embedded moto server, or ``EVENTBUS_TEST_ENDPOINT_URL``."""
    if EXTERNAL_ENDPOINT:
        from urllib.parse import urlsplit

        parts = urlsplit(EXTERNAL_ENDPOINT)
        if not port_open(parts.hostname or "127.0.0.1", parts.port or 80):
            service_missing(f"SNS/SQS endpoint {EXTERNAL_ENDPOINT}")
        yield EXTERNAL_ENDPOINT
        return
    yield from embedded_emulator()


def embedded_emulator() -> Iterator[str]:
    """Run an embedded emulator for the fixture that yields from this; its endpoint URL."""
    try:
        from eventbus.emulator import EmulatorServer
    except ImportError as exc:  # the emulator extra is not installed
        service_missing(f"the embedded emulator (pip install 'eventbus[emulator]': {exc})")
    server = EmulatorServer(port=0, region=REGION)
    server.start()
    try:
        yield server.endpoint_url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_endpoint(sns_sqs_endpoint: str) -> Iterator[str]:
    """The S3 endpoint URL (claim-checked events): the SNS/SQS endpoint when it serves S3 (the embedded emulator
    does), else an embedded emulator of its own (a LocalStack started with SNS and SQS only)."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    probe = boto3.client("s3", config=Config(retries={"total_max_attempts": 1}), **aws_kwargs(sns_sqs_endpoint))
    try:
        probe.list_buckets()
    except (BotoCoreError, ClientError):
        pass
    else:
        yield sns_sqs_endpoint
        return
    yield from embedded_emulator()


def s3_client(endpoint: str) -> Any:
    """A boto3 S3 client on ``endpoint`` (path-style addresses: an emulator has no per-bucket host names)."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(s3={"addressing_style": "path"}), **aws_kwargs(endpoint))


def aws_kwargs(endpoint: str) -> dict[str, Any]:
    """boto3 client arguments for the test endpoint."""
    return {
        "endpoint_url": endpoint,
        "region_name": REGION,
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    }


@pytest.fixture(scope="session")
def sqs(sns_sqs_endpoint: str) -> Any:
    """A boto3 SQS client on the test endpoint."""
    import boto3

    return boto3.client("sqs", **aws_kwargs(sns_sqs_endpoint))


@pytest.fixture(scope="session")
def sns(sns_sqs_endpoint: str) -> Any:
    """A boto3 SNS client on the test endpoint."""
    import boto3

    return boto3.client("sns", **aws_kwargs(sns_sqs_endpoint))


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """PostgreSQL's URL (database ``test``); skips, or fails under CI, when it is down."""
    if not port_open("127.0.0.1", 5432):
        service_missing("PostgreSQL at 127.0.0.1:5432")
    return POSTGRES_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Redis's URL; skips, or fails under CI, when it is down."""
    if not port_open("127.0.0.1", 6379):
        service_missing("Redis at 127.0.0.1:6379")
    return REDIS_URL


@pytest.fixture(scope="module")
def worker(sns: Any, sqs: Any, sns_sqs_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A real worker running ``tests.integration.worker_app`` on a fresh queue."""
    import uuid

    topology = make_topology(sns, sqs, f"itest-{uuid.uuid4().hex[:8]}")
    running = start_worker("tests.integration.worker_app", topology, sns_sqs_endpoint, tmp_path_factory.mktemp("w"))
    yield running
    running.stop()
