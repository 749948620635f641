"""The dependency-injector container: settings in, wired ports out. Nothing connects at import time."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from dependency_injector import containers, providers

from eventbus.adapters.memory import InMemoryPublisher
from eventbus.adapters.memory_repository import InMemoryEntityRepository
from eventbus.core.outbox import OutboxPublisher, OutboxRelay
from eventbus.core.publishing import EventPublisher
from eventbus.settings import EventBusSettings

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient


def _boto_client(service: str, settings: EventBusSettings, config: Any) -> Any:
    import boto3

    key, secret = settings.secret_pair()
    return boto3.session.Session().client(
        service,  # type: ignore[call-overload]
        region_name=settings.region,
        endpoint_url=settings.sns_endpoint() if service == "sns" else settings.endpoint_url,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=config,
    )


def sns_client(settings: EventBusSettings) -> SNSClient:
    """A boto3 SNS client for these settings; its timeouts and attempts bound how long a call can take."""
    from botocore.config import Config

    config = Config(
        connect_timeout=settings.sns_connect_timeout,
        read_timeout=settings.sns_read_timeout,
        retries={"mode": "standard", "total_max_attempts": settings.sns_max_attempts},
    )
    client: SNSClient = _boto_client("sns", settings, config)
    return client


def sqs_client(settings: EventBusSettings) -> SQSClient:
    """A boto3 SQS client for these settings."""
    from botocore.config import Config

    client: SQSClient = _boto_client("sqs", settings, Config(retries={"mode": "standard", "max_attempts": 3}))
    return client


def _django_repository(settings: EventBusSettings) -> Any:
    from eventbus.adapters.django_orm import DjangoEntityRepository

    return DjangoEntityRepository(using=settings.django_database)


def _sqlalchemy_engine(settings: EventBusSettings) -> Any:
    import os

    from sqlalchemy import create_engine

    from eventbus.errors import ConfigurationError

    if not settings.database_url:
        raise ConfigurationError("the sqlalchemy adapters need EVENTBUS_DATABASE_URL")
    engine = create_engine(settings.database_url, pool_pre_ping=True)
    # a forked worker process must not share the parent's pooled connections (SQLAlchemy's pooling guidance)
    os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))
    return engine


def _sqlalchemy_sessions(engine: Any) -> Any:
    from sqlalchemy.orm import sessionmaker

    return sessionmaker(engine, expire_on_commit=False)


def _sqlalchemy_repository(sessions: Any) -> Any:
    from eventbus.adapters.sqlalchemy import SqlAlchemyEntityRepository

    return SqlAlchemyEntityRepository(sessions)


def _sns_publisher(settings: EventBusSettings) -> Any:
    from eventbus.adapters.sns import SnsPublisher

    return SnsPublisher(sns_client(settings), topic_arn=settings.topic_arn, topic_name=settings.topic)


def _sns_longest_publish(settings: EventBusSettings) -> float:
    from eventbus.adapters.sns import longest_publish_batch

    return longest_publish_batch(
        settings.outbox_batch_size,
        connect_timeout=settings.sns_connect_timeout,
        read_timeout=settings.sns_read_timeout,
        attempts=settings.sns_max_attempts,
        topic_lookup=settings.topic_arn is None,
    )


def _outbox_relay(store: Any, transport: Any, longest_publish: float, settings: EventBusSettings) -> OutboxRelay:
    # One claim covers one pass (outbox_batch_size rows, one publish_batch); its lease must outlast the slowest pass,
    # or another relay claims and sends the same rows again. The relay derives the lease, or refuses a shorter one.
    return OutboxRelay(
        store,
        transport,
        batch_size=settings.outbox_batch_size,
        lease=settings.outbox_claim_lease,
        longest_publish=longest_publish,
    )


def _redis_dedup(settings: EventBusSettings) -> Any:
    from eventbus.adapters.redis_dedup import redis_deduplication_store

    return redis_deduplication_store(settings.redis_url)


def _django_dedup(settings: EventBusSettings) -> Any:
    from eventbus.adapters.django_orm.dedup import DjangoDeduplicationStore

    return DjangoDeduplicationStore(using=settings.django_database)


def _sqlalchemy_dedup(sessions: Any) -> Any:
    from eventbus.adapters.sqlalchemy.dedup import SqlAlchemyDeduplicationStore

    return SqlAlchemyDeduplicationStore(sessions)


def _memory_dedup() -> Any:
    from eventbus.adapters.memory_dedup import InMemoryDeduplicationStore

    return InMemoryDeduplicationStore()


def _django_outbox(settings: EventBusSettings) -> Any:
    from eventbus.adapters.django_orm.outbox import DjangoOutboxStore

    return DjangoOutboxStore(using=settings.django_database)


def _sqlalchemy_outbox(sessions: Any, repository: Any) -> Any:
    from eventbus.adapters.sqlalchemy.outbox import SqlAlchemyOutboxStore

    return SqlAlchemyOutboxStore(sessions, repository)


def _memory_outbox(repository: Any) -> Any:
    from eventbus.adapters.memory_outbox import InMemoryOutboxStore

    return InMemoryOutboxStore(repository)


def _missing(what: str, variable: str) -> Any:
    from eventbus.errors import ConfigurationError

    raise ConfigurationError(f"{what} is not configured: set {variable}")


class Container(containers.DeclarativeContainer):
    """Ports wired to adapters. Override a provider in tests: ``with c.publisher.override(fake): ...``."""

    settings = providers.Singleton(EventBusSettings)

    sqlalchemy_engine = providers.Singleton(_sqlalchemy_engine, settings)
    sqlalchemy_sessions = providers.Singleton(_sqlalchemy_sessions, sqlalchemy_engine)

    #: The transport events finally leave through (the outbox relay sends through it too).
    transport_publisher = providers.Selector(
        providers.Callable(lambda s: s.publisher, settings),
        sns=providers.Singleton(_sns_publisher, settings),
        memory=providers.Singleton(InMemoryPublisher),
    )

    django_repository = providers.Singleton(_django_repository, settings)
    sqlalchemy_repository = providers.Singleton(_sqlalchemy_repository, sqlalchemy_sessions)
    memory_repository = providers.Singleton(InMemoryEntityRepository)
    #: The repository ``CeleryTaskWithCallback`` uses; the ORM bindings pick theirs by name.
    repository = providers.Selector(
        providers.Callable(lambda s: s.repository, settings),
        django=django_repository,
        sqlalchemy=sqlalchemy_repository,
        memory=memory_repository,
    )

    #: Where ``@subscribe(idempotent=True)`` handlers record handled events (``EVENTBUS_DEDUP_STORE``).
    deduplication_store = providers.Selector(
        providers.Callable(lambda s: s.dedup_store or "none", settings),
        none=providers.Callable(_missing, "the deduplication store", "EVENTBUS_DEDUP_STORE"),
        redis=providers.Singleton(_redis_dedup, settings),
        django=providers.Singleton(_django_dedup, settings),
        sqlalchemy=providers.Singleton(_sqlalchemy_dedup, sqlalchemy_sessions),
        memory=providers.Singleton(_memory_dedup),
    )

    #: The outbox table of the ORM in use (``EVENTBUS_OUTBOX``); it joins that repository's transactions.
    outbox_store = providers.Selector(
        providers.Callable(lambda s: s.outbox, settings),
        off=providers.Callable(_missing, "the outbox", "EVENTBUS_OUTBOX"),
        django=providers.Singleton(_django_outbox, settings),
        sqlalchemy=providers.Singleton(_sqlalchemy_outbox, sqlalchemy_sessions, sqlalchemy_repository),
        memory=providers.Singleton(_memory_outbox, memory_repository),
    )
    #: The longest one ``publish_batch`` of an outbox relay pass can take through the transport (seconds).
    transport_longest_publish = providers.Selector(
        providers.Callable(lambda s: s.publisher, settings),
        sns=providers.Callable(_sns_longest_publish, settings),
        memory=providers.Object(0.0),
    )
    outbox_relay = providers.Singleton(
        _outbox_relay, outbox_store, transport_publisher, transport_longest_publish, settings
    )

    #: What ``event_publisher`` sends through: the transport, or the outbox when ``EVENTBUS_OUTBOX`` is set.
    publisher = providers.Selector(
        providers.Callable(lambda s: "direct" if s.outbox == "off" else "outbox", settings),
        direct=transport_publisher,
        outbox=providers.Singleton(OutboxPublisher, store=outbox_store, relay=outbox_relay),
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
