"""Settings from ``EVENTBUS_*`` environment variables and, in a Django project, its ``EVENTBUS`` dict.

Precedence, highest first: values passed to :class:`EventBusSettings` in code, ``EVENTBUS_<NAME>`` environment
variables, the Django setting ``EVENTBUS = {"<NAME>": ...}`` (when ``DJANGO_SETTINGS_MODULE`` is set), the defaults.
:meth:`EventBusSettings.load` (what the container uses) reports a wrong setting by the name the user wrote.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from eventbus.core.claim_check import DEFAULT_MAX_STORED_BYTES
from eventbus.core.envelope import MAX_MESSAGE_BYTES
from eventbus.core.naming import FIFO_SUFFIX, default_queue_name
from eventbus.errors import ConfigurationError

#: ``scheme://user:password@`` in a URL: what :meth:`EventBusSettings.effective` masks.
_URL_CREDENTIALS = re.compile(r"(^[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@")


class EventBusSettings(BaseSettings):
    """Everything the container needs; each field reads ``EVENTBUS_<NAME>``.

    An unknown ``EVENTBUS_*`` variable is an error naming the variable, so a typo does not
    silently fall back to a default (``EVENTBUS_TEST_*`` is left to test suites).
    """

    model_config = SettingsConfigDict(env_prefix="EVENTBUS_", extra="forbid", frozen=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Code, then the environment, then Django's ``EVENTBUS`` dict."""
        return init_settings, env_settings, DjangoSettingsSource(settings_cls)

    @classmethod
    def load(cls, **values: Any) -> EventBusSettings:
        """The settings of this process; a wrong one is a :class:`ConfigurationError` naming it as the user wrote it
        (``EVENTBUS_WAIT_TIME_SECONDS``, ``EVENTBUS["WAIT_TIME_SECONDS"]``), never echoing its value.

        Raises:
            ConfigurationError: an unknown or invalid setting.
        """
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigurationError(_describe_errors(exc, values)) from None

    def effective(self) -> list[tuple[str, str, str]]:
        """Each setting as ``(name, value, source)``: the name as the user writes it, secrets masked, and where the
        value came from (``environment``, ``Django EVENTBUS``, ``code`` or ``default``)."""
        django = django_eventbus_settings() or {}
        rows = []
        for field in type(self).model_fields:
            variable = f"EVENTBUS_{field.upper()}"
            value = getattr(self, field)
            if isinstance(value, SecretStr):
                shown = "**********"
            elif isinstance(value, str):
                shown = repr(_URL_CREDENTIALS.sub(r"\1***@", value))  # database/redis URLs with passwords
            else:
                shown = repr(value)
            if variable in os.environ:
                source = "environment"
            elif field.upper() in django:
                source = "Django EVENTBUS"
            elif field in self.model_fields_set:
                source = "code"
            else:
                source = "default"
            rows.append((variable, shown, source))
        return rows

    #: SNS/SQS endpoint; ``None`` means real AWS. The embedded emulator listens on http://localhost:4566.
    endpoint_url: str | None = None
    #: SNS endpoint when it differs from ``endpoint_url`` (a VPC endpoint, a proxy); defaults to ``endpoint_url``.
    sns_endpoint_url: str | None = None
    #: S3 endpoint (claim-checked events) when it differs from ``endpoint_url``; defaults to ``endpoint_url``.
    s3_endpoint_url: str | None = None
    region: str = "eu-west-2"
    #: How long the SNS client waits for a connection, seconds (botocore's default, 60, outlasts an outbox claim).
    sns_connect_timeout: float = Field(default=2.0, gt=0)
    #: How long the SNS client waits for each read of a response, seconds (botocore's default: 60).
    sns_read_timeout: float = Field(default=5.0, gt=0)
    #: Attempts per SNS call, the first included (botocore's standard retry mode).
    sns_max_attempts: int = Field(default=3, ge=1)
    #: Credentials; ``None`` uses boto3's usual chain (env, profile, role). The emulator accepts any.
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    #: Topic name; its ARN is looked up once unless ``topic_arn`` is given.
    topic: str = "local_sns"
    topic_arn: str | None = None
    environment: str = "local"
    service: str = "service"
    #: The service's queue; defaults to ``{environment}__{service}__queue``.
    queue_name: str = ""
    #: FIFO (``docs/fifo.md``): the topic and the queue (and its dead-letter queue) are FIFO, their names end in
    #: ``.fifo`` (added to the defaults; a set name must have it). Events of one message group (the event's
    #: ``entityId`` unless its payload class says otherwise) are delivered and handled in publish order, one at a time.
    fifo: bool = False
    #: ``publisherName`` in published metadata; defaults to ``service``.
    publisher_name: str = ""
    #: Which Publisher adapter the container builds.
    publisher: Literal["sns", "memory"] = "sns"
    #: Which EntityRepository callback tasks use. Unset: a task bound to an ORM (``DjangoCeleryTaskWithCallback``,
    #: ``SQLAlchemyCeleryTaskWithCallback``) uses that ORM's, a generic ``CeleryTaskWithCallback`` Django's. A task
    #: bound to another ORM than the one set here refuses to run (``memory`` serves any task: a test double).
    repository: Literal["django", "sqlalchemy", "memory"] | None = None
    #: SQLAlchemy database URL, for the ``sqlalchemy`` repository (e.g. ``postgresql+psycopg://...``).
    database_url: str | None = None
    #: Django database alias, for the ``django`` repository.
    django_database: str = "default"
    #: Fate of a valid event no handler subscribes to: dropped (a topic fans out every event) or dead-lettered.
    unsubscribed: Literal["drop", "dead-letter"] = "drop"
    #: Key that signs the Celery task messages this service sends and that its workers require of task messages
    #: arriving on the queue (``.delay()``, retries, callback tasks). Without it, only retries of event tasks run from
    #: the queue; other task messages are dead-lettered (``unauthenticated-task``). Same value in every process.
    signing_key: SecretStr | None = None
    #: Message size limit, bytes (default 1 MiB, the most SQS and SNS take): the consumer dead-letters larger bodies
    #: unread, the SNS publisher refuses larger events (``PublishError`` from an ``oversized`` ``EnvelopeError``). An
    #: SNS topic takes more than 256 KiB only with its ``MaximumMessageSize`` raised: set this to match it.
    max_message_bytes: int = MAX_MESSAGE_BYTES
    #: Claim-check (``docs/large-events.md``): the S3 bucket large events are published through. Set, the SNS
    #: publisher stores an event over ``large_payload_threshold`` there and publishes a pointer in the format of AWS's
    #: extended clients; the topology creates the bucket. Unset: larger events are refused. Consumers read pointers
    #: to any bucket they may read, set or not.
    large_payload_bucket: str | None = None
    #: Claim-check: an event whose SNS message (with attributes) is over this many bytes goes through S3; unset:
    #: ``max_message_bytes``, never more.
    large_payload_threshold: int | None = Field(default=None, gt=0)
    #: Claim-check: the largest event body stored in S3 that is published or consumed, bytes (64 MiB).
    large_payload_max_bytes: int = Field(default=DEFAULT_MAX_STORED_BYTES, gt=0)
    #: Claim-check: keep each object after its event was handled (several queues read one topic's large events: each
    #: would delete it under the others); they expire by the bucket's lifecycle rule instead. Off: the consumer
    #: deletes the object once the message is deleted.
    large_payload_keep: bool = False
    #: Topology: days after which the bucket's lifecycle rule expires claim-checked bodies (kept ones, those of
    #: dead-lettered messages, those whose delete failed); longer than the dead-letter queue's retention (14 days).
    large_payload_expiry_days: int = Field(default=15, ge=1)
    #: Long-poll wait for SQS receives, seconds (0-20).
    wait_time_seconds: int = 1
    #: Pause after an empty receive, seconds.
    polling_interval: float = 0.0
    #: Prefetch window per pool process (Celery's ``worker_prefetch_multiplier``).
    prefetch_multiplier: int = 10
    #: Deletes per ``DeleteMessageBatch`` (1-10).
    ack_batch_size: int = 10
    #: Longest wait before buffered deletes are sent, seconds: also the widest window in which a killed worker's
    #: finished messages are redelivered.
    ack_flush_interval: float = 0.05
    #: Extend the visibility of messages the worker holds (running or prefetched) before it lapses.
    heartbeat: bool = True
    #: Longest pause between receives while SQS is unreachable, seconds.
    outage_backoff_max: float = 5.0
    #: Where ``@subscribe(idempotent=True)`` handlers record handled events; required by such handlers.
    dedup_store: Literal["redis", "django", "sqlalchemy", "memory"] | None = None
    #: Redis URL for the ``redis`` deduplication store.
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: How long a handled event is remembered, seconds (duplicates arriving later run again).
    dedup_keep_for: float = 86_400.0
    #: How long a claim on an event holds after its holder's last renewal, seconds (renewed every third of it while
    #: the handler runs; after a crash, a redelivery waits at most this long).
    dedup_lease: float = 30.0
    #: What a worker does when its start-up checks find a problem (the queue it consumes is missing, not subscribed to
    #: the topic, has no dead-letter queue, or is not ``queue_name``): ``error`` refuses to start, ``warn`` logs it.
    startup_checks: Literal["error", "warn"] = "error"
    #: Spans and metrics: ``auto`` records them through the OpenTelemetry API when it is installed (the ``otel``
    #: extra; a no-op until the application configures an SDK), ``off`` never.
    telemetry: Literal["auto", "off"] = "auto"
    #: Worker health: a file the worker touches while its consumer loop runs and SQS answers (``eventbus health``
    #: checks its age); unset: no file.
    health_file: str | None = None
    #: How often the worker touches the health file, seconds; ``eventbus health`` calls it stale after three of these.
    health_interval: float = Field(default=5.0, gt=0)
    #: Topology (``eventbus topology``): receives of a message before SQS moves it to the dead-letter queue.
    max_receive_count: int = Field(default=5, ge=1, le=1000)
    #: Topology: the queue's visibility timeout, seconds (raised to the longest handler time limit plus a margin).
    visibility_timeout: int = Field(default=30, ge=0, le=43_200)
    #: Topology: SNS raw message delivery to the queue (off: the SNS wrapper's MessageId deduplicates events that
    #: carry no event id).
    raw_delivery: bool = False
    #: Topology: a subscription filter policy on ``metadata.eventName`` from the ``@subscribe`` registry, so SNS drops
    #: the events this service does not handle before they reach its queue.
    filter_policy: bool = True
    #: Transactional outbox: events published inside a transaction are stored with it and relayed after commit.
    outbox: Literal["off", "django", "sqlalchemy", "memory"] = "off"
    #: Pause between relay passes while idle, seconds (retries back off up to 10 s while the transport fails).
    outbox_relay_interval: float = 1.0
    #: Send a transaction's outbox rows from the committing process right after the commit (lowest latency: one claim,
    #: one publish and one delete per transaction). Off: only the relay loop sends them, ``outbox_batch_size`` at a
    #: time (fewer SNS calls and transactions per event; latency up to ``outbox_relay_interval``).
    outbox_fast_path: bool = True
    #: Outbox rows one relay pass claims and sends together.
    outbox_batch_size: int = Field(default=10, ge=1)
    #: How long a relay's claim on outbox rows holds, seconds (rows of a relay that died are sent again after it).
    #: Unset: the longest a pass can take with the SNS timeouts and attempts, plus a margin, and at least 60; a set
    #: value shorter than that is refused when the relay is built.
    outbox_claim_lease: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _defaults(self) -> EventBusSettings:
        prefix = "EVENTBUS_"
        unknown = sorted(
            key
            for key in os.environ
            if key.startswith(prefix)
            and not key.startswith(f"{prefix}TEST_")
            and key[len(prefix) :].lower() not in type(self).model_fields
        )
        if unknown:
            raise ValueError(f"unknown setting(s) {_with_suggestions(unknown, prefix)}")
        if not self.queue_name:
            queue = default_queue_name(self.environment, self.service)
            object.__setattr__(self, "queue_name", f"{queue}{FIFO_SUFFIX}" if self.fifo else queue)
        if self.fifo and not self.topic.endswith(FIFO_SUFFIX):
            object.__setattr__(self, "topic", f"{self.topic}{FIFO_SUFFIX}")
        names = {"EVENTBUS_QUEUE_NAME": self.queue_name, "EVENTBUS_TOPIC": self.topic}
        if self.topic_arn:
            names["EVENTBUS_TOPIC_ARN"] = self.topic_arn
        for variable, name in names.items():
            if name.endswith(FIFO_SUFFIX) != self.fifo:
                raise ValueError(
                    f"{variable} {name!r} {'does not end' if self.fifo else 'ends'} in {FIFO_SUFFIX} "
                    f"but EVENTBUS_FIFO is {'on' if self.fifo else 'off'}: FIFO topics and queues go together"
                )
        if not self.publisher_name:
            object.__setattr__(self, "publisher_name", self.service)
        return self

    def secret_pair(self) -> tuple[str | None, str | None]:
        """The configured credentials as plain strings (``None`` when unset)."""
        key = self.access_key_id.get_secret_value() if self.access_key_id else None
        secret = self.secret_access_key.get_secret_value() if self.secret_access_key else None
        if (self.endpoint_url or self.sns_endpoint_url or self.s3_endpoint_url) and key is None:
            # Emulators accept any credentials; not requiring them keeps local set-up to one variable.
            return "test", "test"
        return key, secret

    def sns_endpoint(self) -> str | None:
        """The endpoint publishers use: ``sns_endpoint_url``, else ``endpoint_url``."""
        return self.sns_endpoint_url or self.endpoint_url

    def broker_url(self) -> str:
        """The kombu SQS broker URL for these settings (credentials, and the endpoint's host and port)."""
        key, secret = self.secret_pair()
        # quoted: an AWS secret may hold "/" or "+" (kombu unquotes both parts)
        auth = f"{quote(key, safe='')}:{quote(secret, safe='')}@" if key and secret else ""
        if self.endpoint_url:
            parts = urlsplit(self.endpoint_url)
            return f"sqs://{auth}{parts.netloc.rsplit('@', 1)[-1]}"
        return f"sqs://{auth}"


def _with_suggestions(unknown: list[str], prefix: str) -> str:
    """``EVENTBUS_ENDPOINT_URLL (did you mean EVENTBUS_ENDPOINT_URL?)``, for each unknown name."""
    known = [f"{prefix}{name.upper()}" for name in EventBusSettings.model_fields]
    described = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.85)
        described.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return ", ".join(described) + "; the settings are listed in the README's Configuration table"


def _describe_errors(exc: ValidationError, values: Mapping[str, Any]) -> str:
    """The errors of ``exc`` by the names the user wrote, without the values (they may be secrets)."""
    django = django_eventbus_settings() or {}
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        if not field:
            lines.append(error["msg"].removeprefix("Value error, "))
            continue
        if field in values:
            name = field
        elif f"EVENTBUS_{field.upper()}" in os.environ:
            name = f"EVENTBUS_{field.upper()}"
        elif field.upper() in django:
            name = f'EVENTBUS["{field.upper()}"] (Django settings)'
        else:
            name = f"EVENTBUS_{field.upper()}"
        lines.append(f"{name}: {error['msg']}")
    return "invalid eventbus settings: " + "; ".join(lines)


def django_eventbus_settings() -> dict[str, Any] | None:
    """Django's ``EVENTBUS`` setting when this process runs a Django project (``DJANGO_SETTINGS_MODULE`` set or
    settings configured), else ``None``. Reading it imports the project's settings module, not the apps.

    Raises:
        ConfigurationError: ``EVENTBUS`` is not a dict of upper-case names, or the project's settings hold a
            top-level ``EVENTBUS_<NAME>`` setting (which nothing would read).
    """
    if not os.environ.get("DJANGO_SETTINGS_MODULE") and "django.conf" not in sys.modules:
        return None
    try:
        from django.conf import settings
    except ImportError:
        return None
    if not settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return None  # (with the variable set, reading an attribute loads the settings module: a celery.py runs first)
    try:
        names = dir(settings)
    except ImportError as exc:  # the module DJANGO_SETTINGS_MODULE names does not import
        raise ConfigurationError(
            f"DJANGO_SETTINGS_MODULE={os.environ.get('DJANGO_SETTINGS_MODULE')} cannot be imported "
            f"({type(exc).__name__}: {exc}), so its EVENTBUS setting cannot be read: fix it, or unset the variable in "
            "a process that is not a Django project"
        ) from exc
    stray = sorted(name for name in names if name.startswith("EVENTBUS_") and not name.startswith("EVENTBUS_TEST"))
    if stray:
        raise ConfigurationError(
            f"Django setting(s) {', '.join(stray)} are not read: eventbus reads the EVENTBUS_* environment variables "
            "and the Django setting EVENTBUS = {"
            + ", ".join(f'"{name.removeprefix("EVENTBUS_")}": ...' for name in stray)
            + "}"
        )
    raw = getattr(settings, "EVENTBUS", None)
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"the Django setting EVENTBUS must be a dict, not {type(raw).__name__}")
    known = {name.upper() for name in EventBusSettings.model_fields}
    unknown = sorted(str(key) for key in raw if key not in known)
    if unknown:
        described = []
        for key in unknown:
            close = difflib.get_close_matches(key.upper(), sorted(known), n=1, cutoff=0.85)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            described.append(f'EVENTBUS["{key}"]{hint}')
        raise ConfigurationError(
            f"unknown key(s) in the Django setting EVENTBUS: {', '.join(described)}; its keys are the EVENTBUS_* "
            "variables' names without the prefix, in upper case"
        )
    return dict(raw)


class DjangoSettingsSource(PydanticBaseSettingsSource):
    """Values of Django's ``EVENTBUS`` dict, below the environment in precedence."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        values = django_eventbus_settings() or {}
        key = field_name.upper()
        return values.get(key), key, False

    def __call__(self) -> dict[str, Any]:
        values = django_eventbus_settings() or {}
        return {key.lower(): value for key, value in values.items()}
