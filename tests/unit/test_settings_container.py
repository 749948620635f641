"""Settings from EVENTBUS_* variables and the container they build; nothing connects while wiring."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from eventbus.adapters.aws import SnsPublisher
from eventbus.adapters.memory import InMemoryPublisher
from eventbus.container import build_container
from eventbus.settings import EventBusSettings


def test_environment_variables_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTBUS_ENVIRONMENT", "production")
    monkeypatch.setenv("EVENTBUS_SERVICE", "myservice")
    monkeypatch.setenv("EVENTBUS_ENDPOINT_URL", "http://localhost:4566")
    settings = EventBusSettings()
    assert settings.queue_name == "production__myservice__queue"
    assert settings.publisher_name == "myservice"
    assert settings.broker_url() == "sqs://test:test@localhost:4566"


def test_real_aws_broker_url_has_no_host() -> None:
    assert EventBusSettings().broker_url() == "sqs://"


def test_wrong_values_are_errors_naming_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTBUS_PUBLISHER", "kafka")
    with pytest.raises(ValidationError, match="publisher"):
        EventBusSettings()


def test_an_unknown_variable_is_an_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTBUS_QUEUE", "oops")  # meant EVENTBUS_QUEUE_NAME
    with pytest.raises(ValidationError, match="EVENTBUS_QUEUE"):
        EventBusSettings()


def test_load_names_an_unknown_variable_as_written_with_a_suggestion(monkeypatch: pytest.MonkeyPatch) -> None:
    from eventbus.errors import ConfigurationError

    monkeypatch.setenv("EVENTBUS_ENDPOINT_URLL", "http://localhost:4566")
    with pytest.raises(ConfigurationError) as caught:
        EventBusSettings.load()
    assert "EVENTBUS_ENDPOINT_URLL (did you mean EVENTBUS_ENDPOINT_URL?)" in str(caught.value)
    assert "localhost" not in str(caught.value)


def test_load_names_an_invalid_value_by_its_variable_never_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from eventbus.errors import ConfigurationError

    monkeypatch.setenv("EVENTBUS_WAIT_TIME_SECONDS", "s3cret-looking")
    with pytest.raises(ConfigurationError) as caught:
        EventBusSettings.load()
    assert str(caught.value).startswith("invalid eventbus settings: EVENTBUS_WAIT_TIME_SECONDS: ")
    assert "s3cret-looking" not in str(caught.value)
    assert "wait_time_seconds" not in str(caught.value)


def test_the_emulator_provisions_the_queue_a_default_worker_consumes(monkeypatch: pytest.MonkeyPatch) -> None:
    """``eventbus emulator`` without ``--queue`` provisions the settings' queue (the library's default name)."""
    from eventbus.container import set_container
    from eventbus.emulator import cli

    provisioned: list[tuple[str, list[str]]] = []

    class Server:
        endpoint_url, account_id = "http://127.0.0.1:1", "000000000000"

        def __init__(self, **_: object) -> None: ...

        def start(self) -> Server:
            return self

        def stop(self) -> None: ...

    monkeypatch.setattr("eventbus.emulator.server.EmulatorServer", Server)
    monkeypatch.setattr(
        cli, "_provision_seed", lambda server, topic, queues, fifo=False: provisioned.append((topic, queues))
    )
    monkeypatch.setattr(cli.threading.Event, "wait", lambda self, timeout=None: True)
    monkeypatch.setattr(cli.signal, "signal", lambda signum, handler: None)  # leave pytest's handlers alone
    set_container(None)
    try:
        assert cli.run_emulator([]) == 0
    finally:
        set_container(None)
    assert provisioned == [("local_sns", [EventBusSettings().queue_name])] == [("local_sns", ["local__service__queue"])]


def test_the_container_picks_the_publisher_and_connects_to_nothing() -> None:
    # port 9 (discard) on loopback: any connection attempt while wiring would fail loudly
    container = build_container(EventBusSettings(publisher="sns", endpoint_url="http://127.0.0.1:9"))
    publisher = container.event_publisher()
    assert isinstance(publisher.port, SnsPublisher)
    memory = build_container(EventBusSettings(publisher="memory"))
    assert isinstance(memory.publisher(), InMemoryPublisher)


def test_providers_can_be_overridden_in_tests() -> None:
    container = build_container(EventBusSettings(publisher="sns", endpoint_url="http://127.0.0.1:9"))
    fake = InMemoryPublisher()
    with container.publisher.override(fake):
        assert container.publisher() is fake


def test_outbox_setting_puts_the_outbox_publisher_in_front_of_the_transport() -> None:
    from eventbus.adapters.memory import InMemoryOutboxStore
    from eventbus.core.outbox import OutboxPublisher

    container = build_container(EventBusSettings(publisher="memory", outbox="memory"))
    publisher = container.publisher()
    assert isinstance(publisher, OutboxPublisher)
    assert isinstance(publisher.store, InMemoryOutboxStore)
    assert publisher.relay is container.outbox_relay()
    assert isinstance(container.outbox_relay().transport, InMemoryPublisher)
    assert container.event_publisher().port is publisher
    off = build_container(EventBusSettings(publisher="memory"))
    assert off.publisher() is off.transport_publisher()


def test_without_the_outbox_fast_path_committed_rows_wait_for_the_relay_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    from eventbus.core.outbox import OutboxPublisher
    from eventbus.core.payload import EventPayload

    class ItemStoredPayload(EventPayload):
        n: int

    monkeypatch.setenv("EVENTBUS_OUTBOX_FAST_PATH", "false")
    container = build_container(EventBusSettings(publisher="memory", outbox="memory"))
    publisher = container.publisher()
    assert isinstance(publisher, OutboxPublisher)
    assert publisher.relay is None
    transport = container.transport_publisher()
    assert isinstance(transport, InMemoryPublisher)
    container.event_publisher().publish_batch([ItemStoredPayload(n=n) for n in range(12)])
    assert transport.published == []  # stored, not sent: the relay loop sends them
    assert publisher.store.pending() == 12
    assert container.outbox_relay().drain().sent == 12  # in passes of outbox_batch_size
    assert len(transport.published) == 12
    fast = build_container(EventBusSettings(publisher="memory", outbox="memory", outbox_fast_path=True))
    assert fast.publisher().relay is fast.outbox_relay()


def test_sns_endpoint_defaults_to_the_sqs_one_and_can_differ() -> None:
    assert EventBusSettings(endpoint_url="http://a:1").sns_endpoint() == "http://a:1"
    both = EventBusSettings(endpoint_url="http://a:1", sns_endpoint_url="http://b:2")
    assert both.sns_endpoint() == "http://b:2"
    assert both.broker_url() == "sqs://test:test@a:1"


def test_a_missing_dedup_store_or_outbox_is_a_clear_configuration_error() -> None:
    from eventbus.errors import ConfigurationError

    container = build_container(EventBusSettings())
    with pytest.raises(ConfigurationError, match="EVENTBUS_DEDUP_STORE"):
        container.deduplication_store()
    with pytest.raises(ConfigurationError, match="EVENTBUS_OUTBOX"):
        container.outbox_store()


def test_dedup_store_is_chosen_by_setting() -> None:
    from eventbus.adapters.memory import InMemoryDeduplicationStore
    from eventbus.adapters.redis import RedisDeduplicationStore

    assert isinstance(
        build_container(EventBusSettings(dedup_store="memory")).deduplication_store(), InMemoryDeduplicationStore
    )
    redis_store = build_container(EventBusSettings(dedup_store="redis", redis_url="redis://127.0.0.1:1/0"))
    assert isinstance(redis_store.deduplication_store(), RedisDeduplicationStore)  # built without connecting


def test_the_sns_client_has_explicit_timeouts_and_a_bounded_number_of_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    from eventbus.adapters.aws import sns_client

    # botocore's defaults (60 s to connect, 60 s to read, retries) let one call outlast an outbox claim's lease
    config = sns_client(EventBusSettings(endpoint_url="http://127.0.0.1:9")).meta.config
    assert (config.connect_timeout, config.read_timeout) == (2.0, 5.0)
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}

    monkeypatch.setenv("EVENTBUS_SNS_CONNECT_TIMEOUT", "1")
    monkeypatch.setenv("EVENTBUS_SNS_READ_TIMEOUT", "3.5")
    monkeypatch.setenv("EVENTBUS_SNS_MAX_ATTEMPTS", "2")
    container = build_container(EventBusSettings(endpoint_url="http://127.0.0.1:9"))
    config = container.transport_publisher().client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (1.0, 3.5)
    assert config.retries == {"mode": "standard", "total_max_attempts": 2}


def test_an_outbox_claim_lease_a_relay_pass_could_outlast_is_refused_when_the_relay_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from eventbus.errors import ConfigurationError

    monkeypatch.setenv("EVENTBUS_OUTBOX_CLAIM_LEASE", "60")  # the former default: 10 slow SNS calls take longer
    container = build_container(EventBusSettings(publisher="sns", outbox="memory", endpoint_url="http://127.0.0.1:9"))
    with pytest.raises(ConfigurationError, match="lease"):
        container.outbox_relay()

    monkeypatch.setenv("EVENTBUS_OUTBOX_BATCH_SIZE", "1")
    monkeypatch.setenv("EVENTBUS_SNS_MAX_ATTEMPTS", "1")
    container = build_container(EventBusSettings(publisher="sns", outbox="memory", endpoint_url="http://127.0.0.1:9"))
    assert (container.outbox_relay().lease, container.outbox_relay().batch_size) == (60.0, 1)
    # the in-memory transport returns at once: the lease needs no more than the default
    assert build_container(EventBusSettings(publisher="memory", outbox="memory")).outbox_relay().lease == 60.0


def test_the_broker_url_quotes_credentials_kombu_unquotes() -> None:
    from kombu.utils.url import url_to_parts

    from eventbus.settings import EventBusSettings

    settings = EventBusSettings.load(access_key_id="AKIA/EXAMPLE", secret_access_key="wJalr/XUtn+FEMI=K7MDENG")
    parts = url_to_parts(settings.broker_url())
    assert (parts.username, parts.password) == ("AKIA/EXAMPLE", "wJalr/XUtn+FEMI=K7MDENG")


def test_effective_settings_mask_secrets_and_url_passwords() -> None:
    from eventbus.settings import EventBusSettings

    settings = EventBusSettings.load(
        database_url="postgresql+psycopg://orders:s3cret-pw@db:5432/orders", signing_key="k3y-value-long"
    )
    shown = " ".join(f"{name}={value} ({source})" for name, value, source in settings.effective())
    assert "s3cret-pw" not in shown
    assert "k3y-value-long" not in shown
    assert "EVENTBUS_DATABASE_URL='postgresql+psycopg://***@db:5432/orders' (code)" in shown
    assert "EVENTBUS_REGION='eu-west-2' (default)" in shown


def test_a_django_settings_module_that_does_not_import_is_named(tmp_path: Any) -> None:
    import os
    import subprocess
    import sys

    code = "from eventbus.settings import EventBusSettings; EventBusSettings.load()"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "no_such_project.settings"}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 1
    assert "ConfigurationError: DJANGO_SETTINGS_MODULE=no_such_project.settings cannot be imported" in done.stderr
