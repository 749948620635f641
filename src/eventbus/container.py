"""The dependency-injector container: settings in, wired ports out. Nothing connects at import time."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from dependency_injector import containers, providers

from eventbus.adapters.memory import InMemoryPublisher
from eventbus.adapters.memory_repository import InMemoryEntityRepository
from eventbus.core.publishing import EventPublisher
from eventbus.settings import EventBusSettings

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient


def _boto_client(service: str, settings: EventBusSettings) -> Any:
    import boto3
    from botocore.config import Config

    key, secret = settings.secret_pair()
    return boto3.session.Session().client(
        service,  # type: ignore[call-overload]
        region_name=settings.region,
        endpoint_url=settings.endpoint_url,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"mode": "standard", "max_attempts": 3}),
    )


def sns_client(settings: EventBusSettings) -> SNSClient:
    """A boto3 SNS client for these settings."""
    client: SNSClient = _boto_client("sns", settings)
    return client


def sqs_client(settings: EventBusSettings) -> SQSClient:
    """A boto3 SQS client for these settings."""
    client: SQSClient = _boto_client("sqs", settings)
    return client


def _django_repository(settings: EventBusSettings) -> Any:
    from eventbus.adapters.django_orm import DjangoEntityRepository

    return DjangoEntityRepository(using=settings.django_database)


def _sqlalchemy_repository(settings: EventBusSettings) -> Any:
    from sqlalchemy import create_engine
    from sqlalchemy.orm import sessionmaker

    from eventbus.adapters.sqlalchemy import SqlAlchemyEntityRepository
    from eventbus.core.errors import ConfigurationError

    if not settings.database_url:
        raise ConfigurationError("the sqlalchemy repository needs EVENTBUS_DATABASE_URL")
    engine = create_engine(settings.database_url, pool_pre_ping=True)
    return SqlAlchemyEntityRepository(sessionmaker(engine, expire_on_commit=False))


def _sns_publisher(settings: EventBusSettings) -> Any:
    from eventbus.adapters.sns import SnsPublisher

    return SnsPublisher(sns_client(settings), topic_arn=settings.topic_arn, topic_name=settings.topic)


class Container(containers.DeclarativeContainer):
    """Ports wired to adapters. Override a provider in tests: ``with c.publisher.override(fake): ...``."""

    settings = providers.Singleton(EventBusSettings)

    publisher = providers.Selector(
        providers.Callable(lambda s: s.publisher, settings),
        sns=providers.Singleton(_sns_publisher, settings),
        memory=providers.Singleton(InMemoryPublisher),
    )

    django_repository = providers.Singleton(_django_repository, settings)
    sqlalchemy_repository = providers.Singleton(_sqlalchemy_repository, settings)
    memory_repository = providers.Singleton(InMemoryEntityRepository)
    #: The repository ``CeleryTaskWithCallback`` uses; the ORM bindings pick theirs by name.
    repository = providers.Selector(
        providers.Callable(lambda s: s.repository, settings),
        django=django_repository,
        sqlalchemy=sqlalchemy_repository,
        memory=memory_repository,
    )

    event_publisher = providers.Singleton(
        EventPublisher,
        publisher=publisher,
        publisher_name=providers.Callable(lambda s: s.publisher_name, settings),
    )


_lock = threading.Lock()
_container: Container | None = None


def build_container(settings: EventBusSettings | None = None) -> Container:
    """A new container; ``settings`` default to the ``EVENTBUS_*`` environment."""
    container = Container()
    if settings is not None:
        container.settings.override(providers.Object(settings))
    return container


def get_container() -> Container:
    """The process-wide container, built from the environment on first use."""
    global _container
    if _container is None:
        with _lock:
            if _container is None:
                _container = build_container()
    return _container


def set_container(container: Container | None) -> None:
    """Replace the process-wide container (``None``: rebuild from the environment on next use)."""
    global _container
    with _lock:
        _container = container
