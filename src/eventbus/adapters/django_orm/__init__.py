"""The Django ORM adapter: entity repository, deduplication store and transactional outbox.

The repository needs nothing installed. The deduplication store and the outbox keep their rows in tables of the
Django app ``eventbus.adapters.django_orm`` (label ``eventbus``): add it to ``INSTALLED_APPS`` and run
``manage.py migrate``.
"""

try:
    import django as _django  # noqa: F401  (fail here, naming the extra, rather than deep inside a module)
except ImportError as exc:
    raise ImportError("eventbus's Django adapter needs the django package: pip install 'eventbus[django]'") from exc

from eventbus.adapters.django_orm.repository import DjangoEntityRepository

__all__ = ["DjangoEntityRepository"]
