"""The Django app holding eventbus's tables (deduplication records, outbox)."""

from django.apps import AppConfig


class EventBusConfig(AppConfig):
    """Add ``"eventbus.adapters.django_orm"`` to ``INSTALLED_APPS``: tables ``eventbus_dedup``, ``eventbus_outbox``."""

    name = "eventbus.adapters.django_orm"
    label = "eventbus"
    verbose_name = "eventbus"
    default_auto_field = "django.db.models.BigAutoField"
