"""The seed's second section, verbatim apart from the import prefix, plus tasks for the other scenarios."""

from uuid import UUID

from celery import shared_task

from eventbus.celery.tasks import DjangoCeleryTaskWithCallback
from eventbus.payload import EventFailPayload, EventPayload
from tests.django_project.entities.models import Entity


class ActionHappenedPayload(EventPayload):
    id: UUID

    class Config:
        orm_mode = True


class ActionHappeningFailedPayload(EventFailPayload):
    pass


@shared_task(
    bind=True,
    base=DjangoCeleryTaskWithCallback,
    model=Entity,
    payload_cls=ActionHappenedPayload,
    exception_payload_cls=ActionHappeningFailedPayload,
    delete_on_failure=True,
    delete_on_success=False,
)
def do_entity_action(task: DjangoCeleryTaskWithCallback, entity_id: UUID):  # type: ignore[no-untyped-def]
    entity: Entity = task.get_instance(id=entity_id)
    entity.do_action()


# --- beyond the seed: retries, delete on success, a payload that cannot be built ---


@shared_task(
    bind=True,
    base=DjangoCeleryTaskWithCallback,
    model=Entity,
    payload_cls=ActionHappenedPayload,
    exception_payload_cls=ActionHappeningFailedPayload,
    delete_on_success=True,
    autoretry_for=(Exception,),
    max_retries=2,
    default_retry_delay=0,
)
def retrying_entity_action(task: DjangoCeleryTaskWithCallback, entity_id: str) -> None:
    entity: Entity = task.get_instance(id=entity_id)
    entity.do_action(attempt=task.request.retries)


class StrictPayload(EventPayload):
    id: UUID
    touched: str  # an int on the model: building the payload fails, naming the field
    priority: int  # not on the model at all


class StrictFailedPayload(EventFailPayload):
    pass


@shared_task(
    bind=True,
    base=DjangoCeleryTaskWithCallback,
    model=Entity,
    payload_cls=StrictPayload,
    exception_payload_cls=StrictFailedPayload,
)
def strict_entity_action(task: DjangoCeleryTaskWithCallback, entity_id: str) -> None:
    task.get_instance(id=entity_id).do_action()


# --- the transactional outbox: an event published inside the task's transaction ---


class EntityNoticedPayload(EventPayload):
    id: UUID


@shared_task(
    bind=True,
    base=DjangoCeleryTaskWithCallback,
    model=Entity,
    payload_cls=ActionHappenedPayload,
    exception_payload_cls=ActionHappeningFailedPayload,
)
def announce_then_act(task: DjangoCeleryTaskWithCallback, entity_id: str) -> None:
    """Publishes ``entityNoticed`` in the transaction, then acts: a failing action takes the notice back too."""
    from eventbus.container import get_container

    entity: Entity = task.get_instance(id=entity_id)
    get_container().event_publisher().publish(EntityNoticedPayload(id=entity.id), entity_id=entity.id)
    entity.do_action()
