"""The Django app of the integration: ``"eventbus.contrib.django"`` in ``INSTALLED_APPS``."""

from __future__ import annotations

from django.apps import AppConfig


class EventBusConfig(AppConfig):
    """Registers eventbus's system checks (tag ``eventbus``) and provides its management commands; no models."""

    name = "eventbus.contrib.django"
    label = "eventbus_django"
    verbose_name = "eventbus (Django integration)"

    def ready(self) -> None:
        """Register the checks; nothing here connects anywhere (they run when ``manage.py check`` asks)."""
        from eventbus.contrib.django.checks import register_checks

        register_checks()
