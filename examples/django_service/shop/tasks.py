"""The seed's pattern on a Django model: ``parcelDispatched`` / ``parcelDispatchFailed``."""

from typing import Any
from uuid import UUID

from celery import shared_task

from eventbus.celery import subscribe
from eventbus.celery.tasks import DjangoCeleryTaskWithCallback
from eventbus.core.envelope import Metadata
from eventbus.payload import EventFailPayload, EventPayload
from examples.django_service.shop.models import Parcel


class ParcelDispatchedPayload(EventPayload):
    id: UUID
    weight: int

    class Config:
        orm_mode = True


class ParcelDispatchFailedPayload(EventFailPayload):
    pass


@shared_task(
    bind=True,
    base=DjangoCeleryTaskWithCallback,
    model=Parcel,
    payload_cls=ParcelDispatchedPayload,
    exception_payload_cls=ParcelDispatchFailedPayload,
    delete_on_failure=True,
    delete_on_success=False,
)
def dispatch_parcel(task: DjangoCeleryTaskWithCallback, parcel_id: UUID) -> None:
    parcel: Parcel = task.get_instance(id=parcel_id)
    parcel.dispatch()


@subscribe
def parcel_dispatched(task: Any, payload: ParcelDispatchedPayload, metadata: Metadata) -> None:
    print(f"success callback: parcelDispatched {payload.id}", flush=True)


@subscribe
def parcel_dispatch_failed(task: Any, payload: ParcelDispatchFailedPayload, metadata: Metadata) -> None:
    print(f"failure callback: parcelDispatchFailed {payload.entity_id} errorCode={metadata.error_code}", flush=True)
