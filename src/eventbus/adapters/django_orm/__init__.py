"""The Django ORM adapter: entity repository, deduplication store and transactional outbox.

The repository needs nothing installed. The deduplication store and the outbox keep their rows in tables of the
Django app ``eventbus.adapters.django_orm`` (label ``eventbus``): add it to ``INSTALLED_APPS`` and run
``manage.py migrate``.
"""

from eventbus.adapters.django_orm.repository import DjangoEntityRepository

__all__ = ["DjangoEntityRepository"]
