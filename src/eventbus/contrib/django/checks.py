"""eventbus's Django system checks (``manage.py check``, tag ``eventbus``): what would otherwise fail only when a task
runs or a worker starts.

=============  ==========================================================================================
id             finds
=============  ==========================================================================================
eventbus.E001  the settings do not load (unknown or invalid setting, stray ``EVENTBUS_*`` Django setting)
eventbus.E002  ``OUTBOX`` or ``DEDUP_STORE`` is ``django`` without ``eventbus.adapters.django_orm`` installed
eventbus.E003  a callback task's ``payload_cls`` requires fields its Django ``model`` lacks
eventbus.E004  two ``@subscribe`` tasks handle one event name
eventbus.E005  the Celery app has ``@subscribe`` tasks but ``eventbus.celery.configure(app)`` was not called
eventbus.E006  the Celery app cannot import its task modules
eventbus.E007  the outbox does not join the transactions of the callback tasks' repository
eventbus.W001  the Celery app's queue is not the settings' ``QUEUE_NAME``
eventbus.W002  no Celery app found: the task checks were skipped
=============  ==========================================================================================

The Celery app is found as a Django project defines it: ``proj/__init__.py`` imports ``from .celery import app``, which
makes it Celery's current app. Nothing here connects to AWS or a database.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from django.apps import AppConfig, apps
from django.core.checks import CheckMessage, Error, Warning, register
from django.db import models

from eventbus.errors import ConfigurationError, EventBusError
from eventbus.settings import EventBusSettings

__all__ = ["ADAPTER_APP", "TAG", "check_celery_app", "check_settings", "find_celery_app", "register_checks"]

#: The tag of eventbus's checks: ``manage.py check --tag eventbus``.
TAG = "eventbus"
#: The Django app holding the deduplication and outbox tables.
ADAPTER_APP = "eventbus.adapters.django_orm"
#: Set while :func:`find_celery_app` imports the app's task modules: Celery's Django fixup runs Django's checks from
#: there (``validate_models``), and those must not import the modules again.
_DISCOVERING = threading.local()
_SETTINGS_HINT = (
    'Fix it in the Django setting EVENTBUS = {"NAME": ...} or the EVENTBUS_<NAME> environment variable (the '
    "environment wins); the settings are listed in the README's Configuration table."
)


def register_checks() -> None:
    """Register the checks under :data:`TAG` (idempotent: Django's registry keeps each function once)."""
    register(check_settings, TAG)
    register(check_celery_app, TAG)


def _load_settings() -> tuple[EventBusSettings | None, list[CheckMessage]]:
    try:
        return EventBusSettings.load(), []
    except EventBusError as exc:
        return None, [Error(str(exc), hint=_SETTINGS_HINT, obj="EVENTBUS", id="eventbus.E001")]


def check_settings(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """E001: the settings load; E002: the Django stores they name have their tables' app installed."""
    settings, errors = _load_settings()
    if settings is None:
        return errors
    needing = [f"{name}={value!r}" for name, value in _django_stores(settings)]
    if needing and not apps.is_installed(ADAPTER_APP):
        errors.append(
            Error(
                f"eventbus keeps {' and '.join(needing)} rows in Django's database, but the app {ADAPTER_APP!r} that "
                "holds their tables is not in INSTALLED_APPS",
                hint=f'Add "{ADAPTER_APP}" to INSTALLED_APPS and run manage.py migrate.',
                obj="EVENTBUS",
                id="eventbus.E002",
            )
        )
    return errors


def _django_stores(settings: EventBusSettings) -> list[tuple[str, str]]:
    stores = [("OUTBOX", settings.outbox), ("DEDUP_STORE", settings.dedup_store or "")]
    return [(name, value) for name, value in stores if value == "django"]


def find_celery_app() -> tuple[Any, str]:
    """The project's Celery app (Celery's current app, once the project package imported it), with its task modules
    imported (``autodiscover_tasks()`` has run); or ``None`` and why none was found.

    Raises:
        ConfigurationError: the app's task modules cannot be imported.
    """
    if "celery" not in sys.modules:
        return None, "Celery is not imported by the project (no proj/celery.py imported from proj/__init__.py)"
    from celery.app import app_or_default

    app = app_or_default()
    # Celery's fallback app (made when no app was created) is the one not set as current
    if not getattr(app, "set_as_current", False):
        return None, (
            "no Celery app was created while loading the project: import it in the project package "
            "(proj/__init__.py: from .celery import app), as Celery's Django guide does"
        )
    _DISCOVERING.active = True
    try:
        app.loader.import_default_modules()
    except ImportError as exc:
        raise ConfigurationError(
            f"the Celery app {app.main!r} cannot import its task modules: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        _DISCOVERING.active = False
    return app, ""


def check_celery_app(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """E003-E007 and W001 on the project's Celery app and its tasks; W002 when there is no app to check."""
    if getattr(_DISCOVERING, "active", False):
        return []  # run by Celery's Django fixup while find_celery_app imports the tasks: the outer run checks them
    try:
        app, reason = find_celery_app()
    except ConfigurationError as exc:
        hint = "Fix the import error above; a worker of this app would fail the same way."
        return [Error(str(exc), hint=hint, obj="celery", id="eventbus.E006")]
    if app is None:
        return [
            Warning(
                f"no Celery app found, so eventbus's task checks were skipped: {reason}",
                hint="Import the Celery app in the project package (from .celery import app) so manage.py check "
                "sees the tasks a worker runs.",
                obj="celery",
                id="eventbus.W002",
            )
        ]
    settings, _ = _load_settings()  # check_settings reports a failure to load
    tasks = list(app.tasks.values())  # finalizes the app: shared tasks are attached
    unconfigured = _configure_checks(app, tasks)
    messages = _payload_checks(tasks) + _duplicate_checks(tasks) + unconfigured
    if settings is not None:
        # an app configure() never saw has Celery's queue: E005 says what to do about that
        messages += ([] if unconfigured else _queue_checks(app, settings)) + _wiring_checks(settings, tasks)
    return messages


def _callback_tasks(tasks: Iterable[Any]) -> list[Any]:
    from eventbus.celery.tasks import CeleryTaskWithCallback

    return [task for task in tasks if isinstance(task, CeleryTaskWithCallback)]


def _payload_checks(tasks: Iterable[Any]) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for task in _callback_tasks(tasks):
        model, payload_cls = task.model, task.payload_cls
        if payload_cls is None or not (isinstance(model, type) and issubclass(model, models.Model)):
            continue
        missing = missing_fields(payload_cls, model)
        if missing:
            errors.append(
                Error(
                    f"callback task {task.name!r}: its payload class {payload_cls.__qualname__} requires "
                    f"{', '.join(missing)}, which the model {model._meta.label} has neither as a field nor as an "
                    "attribute: its success event could not be built, after the task's work was done",
                    hint="Add them to the model (a field or a property), give them a default in the payload class, "
                    "or map them to model attributes with Field(validation_alias=...).",
                    obj=task.name,
                    id="eventbus.E003",
                )
            )
    return errors


def missing_fields(payload_cls: Any, model: type[models.Model]) -> list[str]:
    """The required fields of ``payload_cls`` that ``model`` offers under none of their names (the field's name,
    alias, validation alias): built with ``model_validate(instance, from_attributes=True)``, they would fail."""
    offered = {field.name for field in model._meta.get_fields()}
    offered |= {getattr(field, "attname", field.name) for field in model._meta.get_fields()}
    missing = []
    for name, field in payload_cls.model_fields.items():
        if not field.is_required():
            continue
        names = {name, *_alias_names(field.alias), *_alias_names(field.validation_alias)}
        if not any(candidate in offered or hasattr(model, candidate) for candidate in names):
            missing.append(name)
    return missing


def _alias_names(alias: Any) -> list[str]:
    """The attribute names an alias reads: a string, the first step of an ``AliasPath``, each ``AliasChoices``."""
    from pydantic import AliasChoices, AliasPath

    if isinstance(alias, str):
        return [alias]
    if isinstance(alias, AliasPath):
        return [str(alias.path[0])] if alias.path else []
    if isinstance(alias, AliasChoices):
        return [name for choice in alias.choices for name in _alias_names(choice)]
    return []


def _duplicate_checks(tasks: Iterable[Any]) -> list[CheckMessage]:
    from eventbus.celery.subscribe import subscriptions_of

    handlers: dict[str, list[str]] = {}
    for subscription in subscriptions_of(tasks):
        handlers.setdefault(subscription.event_name, []).append(subscription.handler)
    return [
        Error(
            f"event {event!r} has {len(names)} handlers: {', '.join(repr(n) for n in sorted(names))}; one queue "
            "delivers each event to one handler, so the worker refuses to start",
            hint="Keep one @subscribe task per event name (call the other code from it), or give one of them "
            "another event name with @subscribe(event=...).",
            obj=event,
            id="eventbus.E004",
        )
        for event, names in sorted(handlers.items())
        if len(names) > 1
    ]


def _configure_checks(app: Any, tasks: Iterable[Any]) -> list[CheckMessage]:
    from eventbus.celery.app import CONSUMER
    from eventbus.celery.subscribe import subscriptions_of

    subscribed = subscriptions_of(tasks)
    if not subscribed or app.conf.worker_consumer == CONSUMER:
        return []
    return [
        Error(
            f"the Celery app {app.main!r} has {len(subscribed)} @subscribe task(s) but is not configured for "
            f"eventbus (worker_consumer is {app.conf.worker_consumer!r}, not {CONSUMER!r}): its workers would not "
            "consume the SQS queue as eventbus does",
            hint="Call eventbus.celery.configure(app) in the module that creates the app (proj/celery.py), after "
            "app.config_from_object(...).",
            obj="celery",
            id="eventbus.E005",
        )
    ]


def _queue_checks(app: Any, settings: EventBusSettings) -> list[CheckMessage]:
    queues = [str(app.conf.task_default_queue)]
    queues += [str(getattr(queue, "name", queue)) for queue in app.conf.task_queues or ()]
    other = sorted({queue for queue in queues if queue != settings.queue_name})
    if not other:
        return []
    return [
        Warning(
            f"the Celery app {app.main!r} names the queue(s) {', '.join(repr(q) for q in other)} (task_default_queue "
            f"/ task_queues), but eventbus's QUEUE_NAME is {settings.queue_name!r}: workers and the topology would "
            "use different queues",
            hint='Set the queue once, in EVENTBUS["QUEUE_NAME"] (or EVENTBUS_QUEUE_NAME): configure(app) sets '
            "task_default_queue from it; remove CELERY_TASK_DEFAULT_QUEUE / CELERY_TASK_QUEUES.",
            obj="celery",
            id="eventbus.W001",
        )
    ]


def _wiring_checks(settings: EventBusSettings, tasks: Iterable[Any]) -> list[CheckMessage]:
    from eventbus.container import build_container, check_wiring

    orms = [task.orm for task in _callback_tasks(tasks)]
    try:
        check_wiring(build_container(settings), orms)
    except ConfigurationError as exc:
        return [
            Error(
                str(exc),
                hint="Change the EVENTBUS setting it names; the worker refuses to start with this wiring.",
                obj="EVENTBUS",
                id="eventbus.E007",
            )
        ]
    return []
