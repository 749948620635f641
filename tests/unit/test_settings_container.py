"""Settings from EVENTBUS_* variables and the container they build; nothing connects while wiring."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from eventbus.adapters.memory import InMemoryPublisher
from eventbus.adapters.sns import SnsPublisher
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
