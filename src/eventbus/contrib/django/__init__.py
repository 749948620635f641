"""The Django integration: system checks (``manage.py check``) and management commands.

Add ``"eventbus.contrib.django"`` to ``INSTALLED_APPS`` for the checks (tag ``eventbus``) and the commands
``eventbus_relay`` and ``eventbus_topology``; add ``"eventbus.adapters.django_orm"`` too when the outbox or the
deduplication store keeps its rows in Django's database (then run ``manage.py migrate``). The Django setting
``EVENTBUS`` is read without either entry (:mod:`eventbus.settings`).
"""

try:
    import django as _django  # noqa: F401  (fail here, naming the extra, rather than in INSTALLED_APPS' import)
except ImportError as exc:
    raise ImportError("eventbus's Django integration needs the django package: pip install 'eventbus[django]'") from exc

__all__: list[str] = []
