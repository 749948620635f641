"""The Celery runtime adapter: ``@subscribe``, ``SQSConsumer``, and app configuration."""

from eventbus.celery.app import celery_config, configure
from eventbus.celery.consumer import SQSConsumer
from eventbus.celery.subscribe import EventTask, subscribe

__all__ = ["EventTask", "SQSConsumer", "celery_config", "configure", "subscribe"]
