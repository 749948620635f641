"""The dependency-injector container: settings in, wired ports out. Nothing connects at import time."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from dependency_injector import containers, providers

from eventbus.adapters.memory import InMemoryEntityRepository, InMemoryPublisher
from eventbus.core.outbox import OutboxPublisher, OutboxRelay
from eventbus.core.publishing import EventPublisher
from eventbus.core.telemetry import Telemetry
from eventbus.errors import ConfigurationError
from eventbus.ports import EntityRepository
from eventbus.settings import EventBusSettings


def _django_repository(settings: EventBusSettings) -> Any:
    from eventbus.adapters.django_orm import DjangoEntityRepository

    return DjangoEntityRepository(using=settings.django_database)


def _sqlalchemy_engine(settings: EventBusSettings) -> Iterator[Any]:
    """The SQLAlchemy engine as a resource: created on first use, disposed by ``container.shutdown_resources()``."""
    from sqlalchemy import create_engine

    from eventbus.errors import ConfigurationError

    if not settings.database_url:
        raise ConfigurationError("the sqlalchemy adapters need EVENTBUS_DATABASE_URL")
    engine = create_engine(settings.database_url, pool_pre_ping=True)
    _ENGINES.add(engine)
    try:
        yield engine
    finally:
        _ENGINES.discard(engine)
        engine.dispose()


#: The live engines of every container in this process; a forked child drops their pooled connections (SQLAlchemy's
#: pooling guidance: a forked worker must not share its parent's connections). One at-fork hook for all of them.
_ENGINES: weakref.WeakSet[Any] = weakref.WeakSet()


def _forget_inherited_connections() -> None:
    for engine in list(_ENGINES):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_inherited_connections)


def _sqlalchemy_sessions(engine: Any) -> Any:
    from sqlalchemy.orm import sessionmaker

    return sessionmaker(engine, expire_on_commit=False)


def _sqlalchemy_repository(sessions: Any) -> Any:
    from eventbus.adapters.sqlalchemy import SqlAlchemyEntityRepository

    return SqlAlchemyEntityRepository(sessions)


def _payload_store(settings: EventBusSettings) -> Any:
    from eventbus.adapters.aws import S3PayloadStore, s3_client

    # reads pointers to any bucket; stores (the publisher, with a bucket set) into large_payload_bucket
    return S3PayloadStore(s3_client(settings), settings.large_payload_bucket or "")


def _sns_publisher(settings: EventBusSettings, telemetry: Telemetry, payload_store: Any) -> Any:
    from eventbus.adapters.aws import SnsPublisher, sns_client

    return SnsPublisher(
        sns_client(settings),
        topic_arn=settings.topic_arn,
        topic_name=settings.topic,
        max_message_bytes=settings.max_message_bytes,
        telemetry=telemetry,
        payload_store=payload_store() if settings.large_payload_bucket else None,
        claim_check_threshold=settings.large_payload_threshold,
        claim_check_max_bytes=settings.large_payload_max_bytes,
    )


def _sns_longest_publish(settings: EventBusSettings) -> float:
    from eventbus.adapters.aws import longest_publish_batch
    from eventbus.adapters.aws.clients import longest_s3_call

    sns = longest_publish_batch(
        settings.outbox_batch_size,
        connect_timeout=settings.sns_connect_timeout,
        read_timeout=settings.sns_read_timeout,
        attempts=settings.sns_max_attempts,
        topic_lookup=settings.topic_arn is None,
    )
    # with the claim-check, each event of a pass may also be stored in S3 first
    return sns + (settings.outbox_batch_size * longest_s3_call() if settings.large_payload_bucket else 0.0)


def _outbox_relay(
    store: Any, transport: Any, longest_publish: float, settings: EventBusSettings, telemetry: Telemetry
) -> OutboxRelay:
    # One claim covers one pass (outbox_batch_size rows, one publish_batch); its lease must outlast the slowest pass,
    # or another relay claims and sends the same rows again. The relay derives the lease, or refuses a shorter one.
    return OutboxRelay(
        store,
        transport,
        batch_size=settings.outbox_batch_size,
        lease=settings.outbox_claim_lease,
        longest_publish=longest_publish,
        telemetry=telemetry,
    )


def _outbox_publisher(store: Any, relay: OutboxRelay, settings: EventBusSettings) -> OutboxPublisher:
    # without the fast path the committing process only writes rows: the relay loop sends them in batches
    return OutboxPublisher(store, relay=relay if settings.outbox_fast_path else None)


def _redis_dedup(settings: EventBusSettings) -> Any:
    from eventbus.adapters.redis import redis_deduplication_store

    return redis_deduplication_store(settings.redis_url)


def _django_dedup(settings: EventBusSettings) -> Any:
    from eventbus.adapters.django_orm.dedup import DjangoDeduplicationStore

    return DjangoDeduplicationStore(using=settings.django_database)


def _sqlalchemy_dedup(sessions: Any) -> Any:
    from eventbus.adapters.sqlalchemy.dedup import SqlAlchemyDeduplicationStore

    return SqlAlchemyDeduplicationStore(sessions)


def _memory_dedup() -> Any:
    from eventbus.adapters.memory import InMemoryDeduplicationStore

    return InMemoryDeduplicationStore()


def _django_outbox(settings: EventBusSettings) -> Any:
    from eventbus.adapters.django_orm.outbox import DjangoOutboxStore

    return DjangoOutboxStore(using=settings.django_database)


def _sqlalchemy_outbox(sessions: Any, repository: Any) -> Any:
    from eventbus.adapters.sqlalchemy.outbox import SqlAlchemyOutboxStore

    return SqlAlchemyOutboxStore(sessions, repository)


def _memory_outbox(repository: Any) -> Any:
    from eventbus.adapters.memory import InMemoryOutboxStore

    return InMemoryOutboxStore(repository)


def _telemetry(settings: EventBusSettings) -> Telemetry:
    """OpenTelemetry's spans and metrics when its API is installed (``EVENTBUS_TELEMETRY=auto``), else none."""
    if settings.telemetry == "off":
        return Telemetry()
    try:
        from eventbus.adapters.otel import OtelTelemetry
    except ImportError:
        return Telemetry()
    return OtelTelemetry()


def _topic_name(settings: EventBusSettings) -> str:
    """The topic events go to, by name (spans' ``messaging.destination.name``)."""
    return settings.topic_arn.rsplit(":", 1)[-1] if settings.topic_arn else settings.topic


def _missing(what: str, variable: str) -> Any:
    from eventbus.errors import ConfigurationError

    raise ConfigurationError(f"{what} is not configured: set {variable}")


class Container(containers.DeclarativeContainer):
    """Ports wired to adapters. Override a provider in tests: ``with c.publisher.override(fake): ...``."""

    settings = providers.Singleton(EventBusSettings.load)
    #: Spans and metrics (:mod:`eventbus.core.telemetry`): OpenTelemetry's if installed, unless EVENTBUS_TELEMETRY=off.
    telemetry = providers.Singleton(_telemetry, settings)
    #: Claim-checked bodies (S3): the consumer fetches and deletes through it, the SNS publisher stores into it.
    payload_store = providers.Singleton(_payload_store, settings)

    sqlalchemy_engine = providers.Resource(_sqlalchemy_engine, settings)
    sqlalchemy_sessions = providers.Singleton(_sqlalchemy_sessions, sqlalchemy_engine)

    #: The transport events finally leave through (the outbox relay sends through it too).
    transport_publisher = providers.Selector(
        providers.Callable(lambda s: s.publisher, settings),
        sns=providers.Singleton(_sns_publisher, settings, telemetry, payload_store.provider),
        memory=providers.Singleton(InMemoryPublisher),
    )

    django_repository = providers.Singleton(_django_repository, settings)
    sqlalchemy_repository = providers.Singleton(_sqlalchemy_repository, sqlalchemy_sessions)
    memory_repository = providers.Singleton(InMemoryEntityRepository)
    #: Every repository by ORM; a callback task bound to an ORM takes its own from here (``EVENTBUS_REPOSITORY`` unset).
    repositories = providers.Aggregate(
        django=django_repository,
        sqlalchemy=sqlalchemy_repository,
        memory=memory_repository,
    )
    #: The repository of ``EVENTBUS_REPOSITORY`` (default ``django``): what callback tasks use unless bound to an ORM.
    repository = providers.Selector(
        providers.Callable(lambda s: s.repository or "django", settings),
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
        _outbox_relay, outbox_store, transport_publisher, transport_longest_publish, settings, telemetry
    )

    #: What ``event_publisher`` sends through: the transport, or the outbox when ``EVENTBUS_OUTBOX`` is set.
    publisher = providers.Selector(
        providers.Callable(lambda s: "direct" if s.outbox == "off" else "outbox", settings),
        direct=transport_publisher,
        outbox=providers.Singleton(_outbox_publisher, outbox_store, outbox_relay, settings),
    )

    #: Resolves ``publisher`` on each publish, so an override (``container.publisher.override(...)``) reaches an
    #: ``event_publisher`` built before it, and ends with it.
    event_publisher = providers.Singleton(
        EventPublisher,
        publisher=publisher.provider,
        publisher_name=providers.Callable(lambda s: s.publisher_name, settings),
        telemetry=telemetry,
        destination=providers.Callable(_topic_name, settings),
    )


def repository_for(container: Container, orm: str | None) -> EntityRepository:
    """The repository a callback task bound to ``orm`` uses (``None``: not bound, the container's ``repository``).

    ``EVENTBUS_REPOSITORY``, when set, is the one repository of the process: a task bound to another ORM is refused
    (``memory`` serves any task, as a test double). Unset, a bound task gets its own ORM's repository. An override
    of the ``repository`` provider (tests) wins over both.

    Raises:
        ConfigurationError: the task is bound to another ORM than ``EVENTBUS_REPOSITORY``.
    """
    configured = container.settings().repository
    if orm is None or container.repository.overridden or configured == orm or configured == "memory":
        repository: EntityRepository = container.repository()
        return repository
    if configured is not None:
        raise ConfigurationError(
            f"a callback task bound to the {orm} ORM cannot use EVENTBUS_REPOSITORY={configured}: set "
            f"EVENTBUS_REPOSITORY={orm} (or leave it unset), or bind the task to the {configured} ORM"
        )
    bound: EntityRepository = container.repositories(orm)
    return bound


def check_wiring(container: Container, task_orms: Iterable[str | None] = ()) -> None:
    """Refuse, at start-up, wiring that would misbehave silently.

    * An outbox (``EVENTBUS_OUTBOX``) on one ORM with callback tasks whose repository is on another: their events
      would be written outside the transaction of the work they report.
    * A callback task bound to an ORM other than ``EVENTBUS_REPOSITORY``.

    ``task_orms`` are the ORMs the process's callback tasks are bound to (``None`` for an unbound one).

    Raises:
        ConfigurationError: naming the settings to change.
    """
    settings = container.settings()
    in_use: set[str] = set()
    for orm in set(task_orms):
        if settings.repository not in (None, "memory", orm) and orm is not None:
            repository_for(container, orm)  # raises, naming the settings
        in_use.add(settings.repository or orm or "django")
    if settings.outbox != "off":
        for orm in sorted(in_use - {settings.outbox}):
            raise ConfigurationError(
                f"EVENTBUS_OUTBOX={settings.outbox} cannot hold the events of callback tasks whose repository is on "
                f"the {orm} ORM: an outbox must join the repository's transactions (set EVENTBUS_OUTBOX={orm})"
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


def current_container() -> Container | None:
    """The process-wide container if one was built or set, without building one (``None`` otherwise)."""
    return _container


def set_container(container: Container | None) -> None:
    """Replace the process-wide container (``None``: rebuild from the environment on next use)."""
    global _container
    with _lock:
        _container = container
