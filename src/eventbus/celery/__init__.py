"""The Celery runtime adapter: ``@subscribe``, ``SQSConsumer``, and app configuration."""

try:
    import celery as _celery  # noqa: F401  (fail here, naming the extra, rather than deep inside a module)
except ImportError as exc:
    raise ImportError("eventbus's Celery runtime needs celery: pip install 'eventbus[sqs]'") from exc

from eventbus.celery.app import celery_config, configure
from eventbus.celery.consumer import SQSConsumer
from eventbus.celery.subscribe import EventTask, subscribe

__all__ = ["EventTask", "SQSConsumer", "celery_config", "configure", "subscribe"]
