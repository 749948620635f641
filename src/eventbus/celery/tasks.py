"""Celery task bases that publish a success or failure event for an entity: the seed's second section.

``@shared_task(bind=True, base=DjangoCeleryTaskWithCallback, model=Entity, payload_cls=...,
exception_payload_cls=..., delete_on_failure=True, delete_on_success=False)``.

The task body runs inside the repository's transaction (``atomic()``). When it returns, the
success payload is built from the instance loaded with ``task.get_instance(**lookup)``, the
instance is deleted if ``delete_on_success``, and the success event is published *after the
commit*. On the final failure (not on retries) the failure event is published with
``errorCode`` and ``errorOrigin``, after deleting the instance if ``delete_on_failure``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from celery import Task

from eventbus.core.callback import CallbackSpec, EntityCallbacks
from eventbus.core.payload import EventFailPayload, EventPayload
from eventbus.ports import EntityRepository


class CeleryTaskWithCallback(Task):  # type: ignore[misc]
    """Generic callback task: the repository is the container's ``repository`` (chosen by settings)."""

    #: The entity class the repository loads (a Django model, a mapped class, ...).
    model: Any = None
    #: Built from the instance on success; its class name gives the event name.
    payload_cls: type[EventPayload] | None = None
    #: Built on final failure with the entity id and a safe message.
    exception_payload_cls: type[EventFailPayload] | None = None
    #: Delete the instance when the task succeeds (in the task's transaction).
    delete_on_success: bool = False
    #: Delete the instance after the final failure (in a transaction of its own).
    delete_on_failure: bool = False
    #: Which container provider supplies the repository.
    repository_provider: ClassVar[str] = "repository"

    def repository(self) -> EntityRepository:
        """The repository from the process-wide container."""
        from eventbus.container import get_container

        repository: EntityRepository = getattr(get_container(), self.repository_provider)()
        return repository

    def _callbacks(self) -> EntityCallbacks:
        callbacks: EntityCallbacks | None = getattr(self.request, "eventbus_callbacks", None)
        if callbacks is None:
            from eventbus.container import get_container

            container = get_container()
            spec = CallbackSpec(
                self.model, self.payload_cls, self.exception_payload_cls, self.delete_on_success, self.delete_on_failure
            )
            origin = f"{container.settings().service}.{self.name}"
            callbacks = EntityCallbacks(spec, self.repository(), container.event_publisher(), origin=origin)
            self.request.eventbus_callbacks = callbacks
        return callbacks

    def get_instance(self, **lookup: Any) -> Any:
        """Load the entity through the repository.

        Raises:
            EntityNotFound: the task fails; the failure event carries ``errorCode`` ``EntityNotFound``.
        """
        return self._callbacks().get_instance(**lookup)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the body in a transaction, then the success policy; the event goes out after commit."""
        self.request.eventbus_callbacks = None
        callbacks = self._callbacks()
        with callbacks.repository.atomic():
            result = super().__call__(*args, **kwargs)
            callbacks.succeed()
        return result

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """Final failure (Celery calls this after retries are exhausted, not on each retry)."""
        self._callbacks().fail(exc)
        super().on_failure(exc, task_id, args, kwargs, einfo)


class DjangoCeleryTaskWithCallback(CeleryTaskWithCallback):
    """The callback task bound to the Django ORM repository."""

    repository_provider: ClassVar[str] = "django_repository"


class SQLAlchemyCeleryTaskWithCallback(CeleryTaskWithCallback):
    """The callback task bound to the SQLAlchemy repository (session factory from ``EVENTBUS_DATABASE_URL``)."""

    repository_provider: ClassVar[str] = "sqlalchemy_repository"


__all__ = ["CeleryTaskWithCallback", "DjangoCeleryTaskWithCallback", "SQLAlchemyCeleryTaskWithCallback"]
