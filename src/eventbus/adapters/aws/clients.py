"""boto3 clients for SNS and SQS: from settings, or from explicit arguments.

Credentials are boto3's own chain (environment, shared profile, instance or task role) unless given explicitly: in
settings ``EVENTBUS_ACCESS_KEY_ID`` and ``EVENTBUS_SECRET_ACCESS_KEY``, or, for an emulator endpoint without keys,
``test``/``test`` (:meth:`EventBusSettings.secret_pair`). Each call builds its client in a new boto3 session, so
clients are safe to build from several threads. Nothing here connects: a client connects on its first call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

    from eventbus.settings import EventBusSettings


def boto_client(
    service: str,
    *,
    region: str,
    endpoint_url: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    config: Any = None,
) -> Any:
    """A boto3 client for ``service`` (``"sns"``, ``"sqs"``...) in ``region``.

    ``endpoint_url`` ``None`` is AWS itself. Without ``access_key_id`` and ``secret_access_key`` the credentials come
    from boto3's chain; ``config`` is a ``botocore.config.Config`` (``None``: botocore's defaults).
    """
    import boto3

    return boto3.session.Session().client(
        service,  # type: ignore[call-overload]
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        aws_session_token=session_token,
        config=config,
    )


def _settings_client(service: str, settings: EventBusSettings, config: Any) -> Any:
    key, secret = settings.secret_pair()
    endpoints = {"sns": settings.sns_endpoint(), "s3": settings.s3_endpoint_url or settings.endpoint_url}
    return boto_client(
        service,
        region=settings.region,
        endpoint_url=endpoints.get(service, settings.endpoint_url),
        access_key_id=key,
        secret_access_key=secret,
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
    client: SNSClient = _settings_client("sns", settings, config)
    return client


#: The S3 client's timeouts (seconds) and attempts per call (claim-checked events).
S3_CONNECT_TIMEOUT: Final = 2.0
S3_READ_TIMEOUT: Final = 10.0
S3_ATTEMPTS: Final = 2


def longest_s3_call() -> float:
    """The longest one call of :func:`s3_client`'s client can take, in seconds (botocore's standard retry mode pauses
    at most 1 s before its first retry): what one claim-checked event adds to a publish."""
    return S3_ATTEMPTS * (S3_CONNECT_TIMEOUT + S3_READ_TIMEOUT) + (S3_ATTEMPTS - 1) * 1.0


def s3_client(settings: EventBusSettings) -> S3Client:
    """A boto3 S3 client for these settings (claim-checked events), on ``s3_endpoint_url`` (else ``endpoint_url``)
    with path-style addresses when one is set (an emulator has no per-bucket host names)."""
    from botocore.config import Config

    config = Config(
        connect_timeout=S3_CONNECT_TIMEOUT,
        read_timeout=S3_READ_TIMEOUT,
        retries={"mode": "standard", "total_max_attempts": S3_ATTEMPTS},
        s3={"addressing_style": "path"} if settings.s3_endpoint_url or settings.endpoint_url else None,
    )
    client: S3Client = _settings_client("s3", settings, config)
    return client


def sqs_client(settings: EventBusSettings) -> SQSClient:
    """A boto3 SQS client for these settings."""
    from botocore.config import Config

    client: SQSClient = _settings_client("sqs", settings, Config(retries={"mode": "standard", "max_attempts": 3}))
    return client
