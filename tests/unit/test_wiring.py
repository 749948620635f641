"""One settings source and declared wiring: configure() reads the container, tasks take providers, mismatched ORMs
are refused at start, and each event's payload is validated once."""

from __future__ import annotations

import pickle
from collections.abc import Iterator

import pytest
from celery import Celery

from eventbus.adapters.memory import InMemoryEntityRepository
from eventbus.celery import configure
from eventbus.celery.outcomes import DeadLetter
from eventbus.celery.tasks import (
    CeleryTaskWithCallback,
    DjangoCeleryTaskWithCallback,
    SQLAlchemyCeleryTaskWithCallback,
)
from eventbus.container import build_container, check_wiring, get_container, repository_for, set_container
from eventbus.core.dispatch import Fate, decide
from eventbus.core.registry import Subscription, SubscriptionRegistry
from eventbus.errors import ConfigurationError
from eventbus.payload import EventPayload
from eventbus.settings import EventBusSettings


class OrderPlacedPayload(EventPayload):
    order_id: int


@pytest.fixture(autouse=True)
def fresh_container() -> Iterator[None]:
    set_container(None)
    yield
    set_container(None)


def test_configure_reads_the_container_it_is_given_and_makes_it_the_processes() -> None:
    container = build_container(EventBusSettings(queue_name="orders__queue", publisher="memory"))
    app = configure(Celery("wiring", set_as_current=False), container)
    assert app.conf.task_default_queue == "orders__queue"
    assert get_container() is container
    assert not [key for key in app.conf if str(key).startswith("eventbus_")], "no second copy of the settings"


def test_configure_with_settings_is_the_deprecated_spelling() -> None:
    with pytest.warns(DeprecationWarning, match="configure\\(app\\)"):
        app = configure(Celery("wiring", set_as_current=False), EventBusSettings(queue_name="old__queue"))
    assert app.conf.task_default_queue == "old__queue"
    assert get_container().settings().queue_name == "old__queue"


def test_bound_tasks_get_their_orms_repository_unless_the_setting_says_otherwise() -> None:
    memory = InMemoryEntityRepository()
    # the in-memory repository is a test double: it serves a task bound to any ORM
    assert repository_for(build_container(EventBusSettings(repository="memory")), "django").orm == "memory"
    refused = build_container(EventBusSettings(repository="sqlalchemy", database_url="sqlite://"))
    with pytest.raises(ConfigurationError, match=r"EVENTBUS_REPOSITORY=sqlalchemy.*EVENTBUS_REPOSITORY=django"):
        repository_for(refused, DjangoCeleryTaskWithCallback.orm)
    assert SQLAlchemyCeleryTaskWithCallback.orm == "sqlalchemy"
    # unset: a SQLAlchemy-bound task gets the SQLAlchemy repository, not the default Django one
    unset = build_container(EventBusSettings(database_url="sqlite://"))
    assert repository_for(unset, "sqlalchemy").orm == "sqlalchemy"
    unset.shutdown_resources()
    # an override of the repository provider (tests) serves every task
    with unset.repository.override(memory):
        assert repository_for(unset, "sqlalchemy") is memory
        assert repository_for(unset, CeleryTaskWithCallback.orm) is memory


def test_an_outbox_on_another_orm_than_the_repository_is_refused_at_start() -> None:
    mismatched = build_container(EventBusSettings(outbox="sqlalchemy", database_url="sqlite://"))
    with pytest.raises(ConfigurationError, match=r"EVENTBUS_OUTBOX=sqlalchemy.*django ORM.*EVENTBUS_OUTBOX=django"):
        check_wiring(mismatched, ["django"])
    with pytest.raises(ConfigurationError, match="django ORM"):
        check_wiring(mismatched, [None])  # an unbound task uses the default, Django
    check_wiring(mismatched, ["sqlalchemy"])
    check_wiring(build_container(EventBusSettings(outbox="memory", repository="memory")), ["django", None])
    with pytest.raises(ConfigurationError, match="cannot use EVENTBUS_REPOSITORY=sqlalchemy"):
        check_wiring(build_container(EventBusSettings(repository="sqlalchemy")), ["django"])


def test_the_decision_carries_the_validated_payload() -> None:
    registry = SubscriptionRegistry([Subscription("orderPlaced", "orders.placed", OrderPlacedPayload)])
    body = '{"metadata": {"eventName": "orderPlaced"}, "payload": {"order_id": "7"}}'
    decision = decide(body, registry)
    assert decision.fate is Fate.DISPATCH
    assert decision.payload == OrderPlacedPayload(order_id=7)
    # a consumer whose handlers validate where they run gets the dict, and the fate of a bad payload from there
    deferred = decide(body.replace('"7"', '"seven"'), registry, validate_payload=False)
    assert deferred.fate is Fate.DISPATCH
    assert deferred.payload == {"order_id": "seven"}
    assert decide(body.replace('"7"', '"seven"'), registry).fate is Fate.DEAD_LETTER


def test_dead_letter_crosses_the_pool_boundary_with_its_reason() -> None:
    revived = pickle.loads(pickle.dumps(DeadLetter("invalid-payload: payload.order_id: int_parsing")))
    assert isinstance(revived, DeadLetter)
    assert revived.reason == "invalid-payload: payload.order_id: int_parsing"
    assert revived.requeue is False
