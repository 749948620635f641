"""Celery task bases that publish a success or failure event for an entity: the seed's second section.

``@shared_task(bind=True, base=DjangoCeleryTaskWithCallback, model=Entity, payload_cls=...,
exception_payload_cls=..., delete_on_failure=True, delete_on_success=False)``.

The task body runs inside the repository's transaction (``atomic()``). When it returns, the
success payload is built from the instance loaded with ``task.get_instance(**lookup)``, the
instance is deleted if ``delete_on_success``, and the success event is published *after the
commit*. On the final failure (not on retries) the failure event is published with
``errorCode`` and ``errorOrigin``, after deleting the instance if ``delete_on_failure``.

The repository and the publisher come from the container's providers (:func:`eventbus.container.repository_for`,
``event_publisher``); with the outbox on, the outbox store must join the repository's transactions (both declare
their ``orm``), or the task refuses to run with a :class:`~eventbus.errors.ConfigurationError`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from celery import Task

from eventbus.celery.trace_context import continuing_task_trace
from eventbus.core.callback import CallbackSpec, EntityCallbacks
from eventbus.core.payload import EventFailPayload, EventPayload
from eventbus.errors import ConfigurationError
from eventbus.ports import EntityRepository

__all__ = ["CeleryTaskWithCallback", "DjangoCeleryTaskWithCallback", "SQLAlchemyCeleryTaskWithCallback"]


class CeleryTaskWithCallback(Task):  # type: ignore[misc]
    """Generic callback task: the repository is the container's ``repository`` (``EVENTBUS_REPOSITORY``)."""

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
    #: The ORM this task's model belongs to (``None``: whichever ``EVENTBUS_REPOSITORY`` names).
    orm: ClassVar[str | None] = None

    def repository(self) -> EntityRepository:
        """The repository from the process's container (:func:`eventbus.container.repository_for`)."""
        from eventbus.container import get_container, repository_for

        return repository_for(get_container(), self.orm)

    def _callbacks(self) -> EntityCallbacks:
        callbacks: EntityCallbacks | None = getattr(self.request, "eventbus_callbacks", None)
        if callbacks is None:
            from eventbus.container import get_container

            container = get_container()
            repository = self.repository()
            publisher = container.event_publisher()
            if publisher.port.transactional:
                _check_same_transactions(repository, container.outbox_store())
            spec = CallbackSpec(
                self.model, self.payload_cls, self.exception_payload_cls, self.delete_on_success, self.delete_on_failure
            )
            origin = f"{container.settings().service}.{self.name}"
            callbacks = EntityCallbacks(spec, repository, publisher, origin=origin)
            self.request.eventbus_callbacks = callbacks
        return callbacks

    def get_instance(self, **lookup: Any) -> Any:
        """Load the entity through the repository.

        Raises:
            EntityNotFound: the task fails; the failure event carries ``errorCode`` ``EntityNotFound``.
        """
        return self._callbacks().get_instance(**lookup)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the body in a transaction, then the success policy; the event goes out after commit.

        The task's events continue the trace its message carried (a handler that ``.delay()``-ed it: its trace).
        """
        self.request.eventbus_callbacks = None
        with continuing_task_trace(self.request):
            callbacks = self._callbacks()
            with callbacks.repository.atomic():
                result = super().__call__(*args, **kwargs)
                callbacks.succeed()
            return result

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """Final failure (Celery calls this after retries are exhausted, not on each retry)."""
        with continuing_task_trace(self.request):
            self._callbacks().fail(exc)
        super().on_failure(exc, task_id, args, kwargs, einfo)


def _check_same_transactions(repository: EntityRepository, outbox: Any) -> None:
    """An outbox must join the repository's transactions, or events commit apart from the work they report."""
    if repository.orm and outbox.orm and repository.orm != outbox.orm:
        raise ConfigurationError(
            f"the outbox ({type(outbox).__name__}, {outbox.orm}) does not join the transactions of the repository "
            f"({type(repository).__name__}, {repository.orm}): set EVENTBUS_OUTBOX={repository.orm}"
        )


class DjangoCeleryTaskWithCallback(CeleryTaskWithCallback):
    """The callback task bound to the Django ORM repository."""

    orm: ClassVar[str | None] = "django"


class SQLAlchemyCeleryTaskWithCallback(CeleryTaskWithCallback):
    """The callback task bound to the SQLAlchemy repository (session factory from ``EVENTBUS_DATABASE_URL``)."""

    orm: ClassVar[str | None] = "sqlalchemy"
