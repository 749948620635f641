"""The callback policy on in-memory adapters: what is published, when, and what is deleted."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from eventbus.adapters.memory import InMemoryEntityRepository, InMemoryPublisher
from eventbus.core.callback import CallbackSpec, EntityCallbacks, error_code, safe_error_message
from eventbus.core.publishing import EventPublisher
from eventbus.errors import EntityNotFound, PayloadValidationError, SuccessEventNotPublished
from eventbus.payload import EventFailPayload, EventPayload


@dataclass
class Order:
    id: str
    total: int


class OrderShippedPayload(EventPayload):
    id: str
    total: int


class OrderShippingFailedPayload(EventFailPayload):
    pass


class Refused(Exception):
    code = "Refused"


def make(
    *, delete_on_success: bool = False, delete_on_failure: bool = False, payload: type[EventPayload] | None = None
) -> tuple[EntityCallbacks, InMemoryEntityRepository, InMemoryPublisher]:
    repository, port = InMemoryEntityRepository(), InMemoryPublisher()
    repository.add(Order("o-1", 30))
    spec = CallbackSpec(
        Order, payload or OrderShippedPayload, OrderShippingFailedPayload, delete_on_success, delete_on_failure
    )
    callbacks = EntityCallbacks(spec, repository, EventPublisher(port, "shop"), origin="shop.ship_order")
    return callbacks, repository, port


def test_success_is_published_after_commit_with_the_entity_id() -> None:
    callbacks, repository, port = make()
    with repository.atomic():
        callbacks.get_instance(id="o-1")
        callbacks.succeed()
        assert port.published == [], "nothing goes out before the commit"
    [envelope] = port.published
    assert envelope.event_name == "orderShipped"
    assert envelope.payload == {"id": "o-1", "total": 30}
    assert envelope.metadata.entity_id == "o-1"
    assert envelope.metadata.error_code == ""


def test_rolled_back_work_announces_nothing() -> None:
    callbacks, repository, port = make(delete_on_success=True)
    with pytest.raises(Refused), repository.atomic():
        callbacks.get_instance(id="o-1")
        callbacks.succeed()
        raise Refused
    assert port.published == []
    assert repository.get(Order, id="o-1"), "the delete was rolled back"


def test_delete_on_success() -> None:
    callbacks, repository, _ = make(delete_on_success=True)
    with repository.atomic():
        callbacks.get_instance(id="o-1")
        callbacks.succeed()
    with pytest.raises(EntityNotFound):
        repository.get(Order, id="o-1")


def test_failure_event_with_code_origin_and_safe_message_and_delete() -> None:
    callbacks, repository, port = make(delete_on_failure=True)
    callbacks.get_instance(id="o-1")
    callbacks.fail(Refused("card 4111-1111-1111-1111 declined"))
    [envelope] = port.published
    assert envelope.event_name == "orderShippingFailed"
    assert envelope.metadata.error_code == "Refused"
    assert envelope.metadata.error_origin == "shop.ship_order"
    assert envelope.metadata.entity_id == "o-1"
    assert envelope.payload == {"entityId": "o-1", "errorMessage": "Refused raised while processing the entity"}
    with pytest.raises(EntityNotFound):
        repository.get(Order, id="o-1")


def test_missing_entity_fails_with_its_own_code() -> None:
    callbacks, _, port = make(delete_on_failure=True)
    with pytest.raises(EntityNotFound) as caught:
        callbacks.get_instance(id="nope")
    callbacks.fail(caught.value)
    [envelope] = port.published
    assert envelope.metadata.error_code == "EntityNotFound"
    assert envelope.payload["entityId"] == "nope"


def test_payload_that_does_not_fit_names_the_field() -> None:
    class Strict(EventPayload):
        id: str
        weight: float

    callbacks, repository, port = make(payload=Strict)
    with pytest.raises(PayloadValidationError, match="weight") as caught, repository.atomic():
        callbacks.get_instance(id="o-1")
        callbacks.succeed()
    callbacks.fail(caught.value)
    [envelope] = port.published
    # one name in the log (the exception's class) and on the wire (errorCode)
    assert envelope.metadata.error_code == type(caught.value).__name__ == "PayloadValidationError"
    assert "weight" in envelope.payload["errorMessage"]


def test_success_publish_failure_is_not_reported_as_a_task_failure() -> None:
    callbacks, repository, port = make(delete_on_failure=True)
    port.fail_with = "SNS is down"
    with pytest.raises(SuccessEventNotPublished), repository.atomic():
        callbacks.get_instance(id="o-1")
        callbacks.succeed()
    callbacks.fail(SuccessEventNotPublished("x"))
    assert repository.get(Order, id="o-1"), "committed work is not deleted"


def test_error_code_and_message_rules() -> None:
    assert error_code(Refused()) == "Refused"
    assert error_code(ValueError("x")) == "ValueError"
    assert safe_error_message(ValueError("password=hunter2")) == "ValueError raised while processing the entity"
    assert safe_error_message(EntityNotFound("no Order matches the lookup on ['id']")).startswith("no Order")


# ------------------------------------------------------------------ with the transactional outbox


def make_with_outbox(
    *, delete_on_failure: bool = False
) -> tuple[EntityCallbacks, InMemoryEntityRepository, InMemoryPublisher, object]:
    from eventbus.adapters.memory import InMemoryOutboxStore
    from eventbus.core.outbox import OutboxPublisher, OutboxRelay

    repository, transport = InMemoryEntityRepository(), InMemoryPublisher()
    repository.add(Order("o-1", 30))
    store = InMemoryOutboxStore(repository)
    publisher = EventPublisher(OutboxPublisher(store, OutboxRelay(store, transport)), "shop")
    spec = CallbackSpec(Order, OrderShippedPayload, OrderShippingFailedPayload, False, delete_on_failure)
    return EntityCallbacks(spec, repository, publisher, origin="shop.ship"), repository, transport, store


def test_with_the_outbox_the_success_event_is_written_in_the_transaction_and_sent_after_commit() -> None:
    callbacks, repository, transport, _store = make_with_outbox()
    with repository.atomic():
        callbacks.get_instance(id="o-1")
        callbacks.succeed()
        assert transport.published == [], "nothing leaves before the commit"
    assert [e.event_name for e in transport.published] == ["orderShipped"]


def test_with_the_outbox_a_rolled_back_transaction_leaves_no_event() -> None:
    callbacks, repository, transport, store = make_with_outbox()
    with pytest.raises(Refused), repository.atomic():
        callbacks.get_instance(id="o-1")
        callbacks.succeed()
        raise Refused
    assert transport.published == []
    assert store.pending() == 0  # type: ignore[attr-defined]


def test_with_the_outbox_the_failure_event_and_the_delete_commit_together() -> None:
    callbacks, repository, transport, _store = make_with_outbox(delete_on_failure=True)
    callbacks.get_instance(id="o-1")
    callbacks.fail(Refused("no"))
    assert [e.event_name for e in transport.published] == ["orderShippingFailed"]
    assert transport.published[0].metadata.error_code == "Refused"
    with pytest.raises(EntityNotFound):
        repository.get(Order, id="o-1")
