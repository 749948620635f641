"""A worker's start-up checks: run once in the main process, after ``-Q`` is applied and before any queue is declared.

Connected to Celery's ``celeryd_after_setup`` signal by :mod:`eventbus.celery.subscribe` (so whatever the app
imported, a worker whose app has ``@subscribe`` tasks runs them):

* a worker whose app has ``@subscribe`` tasks but whose ``worker_consumer`` is not :class:`SQSConsumer` refuses to
  start (Celery's consumer would delete every event as an unknown message, logging its body);
* an eventbus worker logs its effective settings (INFO, secrets and URL credentials masked), then checks that it
  consumes ``EVENTBUS_QUEUE_NAME``, that every queue it consumes exists (kombu would create a missing one, without a
  dead-letter queue and unsubscribed), and that the event queue has a redrive policy, is FIFO exactly when
  ``EVENTBUS_FIFO`` is on, and is subscribed to the topic.

A failed check refuses the start (``EVENTBUS_STARTUP_CHECKS=error``, the default) or logs a WARNING (``warn``). A
check that cannot be made (a permission missing, an SQS error, the endpoint unreachable) logs WARNING "could not
check ..." and never refuses on its own: the worker then starts as it would have, retrying an unreachable broker.
"""

from __future__ import annotations

import difflib
import logging
import re
import string
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from celery.exceptions import WorkerShutdown
from kombu.utils.imports import symbol_by_name

from eventbus.errors import TransportError

if TYPE_CHECKING:
    from celery import Celery

    from eventbus.adapters.aws.inspection import QueueFacts
    from eventbus.settings import EventBusSettings

__all__ = ["Findings", "QueueReader", "check_worker", "find_problems", "mask_url", "sqs_queue_name"]

logger = logging.getLogger("eventbus.startup")

#: kombu's SQS transport turns punctuation other than ``-_.`` into ``_`` and ``.`` into ``-`` (``Channel.entity_name``).
#: ``user:password@`` after ``//``; a secret may hold ``/`` (AWS's do): masking too much beats leaking.
_CREDENTIALS = re.compile(r"//[^@\s'\"]*@")
_KOMBU_NAME_TABLE = {ord(c): ord("_") for c in string.punctuation if c not in "-_."} | {ord("."): ord("-")}


class QueueReader(Protocol):
    """The look-ups the checks make (:class:`eventbus.adapters.aws.QueueInspector`; a fake in unit tests)."""

    def queue(self, name: str) -> QueueFacts | None: ...

    def names_like(self, prefix: str, limit: int = 100) -> list[str]: ...

    def subscribed(self, topic_arn: str, queue_arn: str) -> bool | None: ...


@dataclass
class Findings:
    """What the checks found: problems (refuse or warn) and checks that could not be made (always a warning)."""

    problems: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)


def mask_url(text: str) -> str:
    """``text`` with the credentials of any URL in it (``//user:password@``) replaced by ``//***@``."""
    return _CREDENTIALS.sub("//***@", text)


def sqs_queue_name(name: str, prefix: str = "") -> str:
    """The SQS name kombu gives the Celery queue ``name`` (``queue_name_prefix`` included)."""
    full = prefix + name
    if full.endswith(".fifo"):
        return full[: -len(".fifo")].translate(_KOMBU_NAME_TABLE) + ".fifo"
    return full.translate(_KOMBU_NAME_TABLE)


def _topic_arn(settings: EventBusSettings, queue_arn: str) -> str:
    """The topic's ARN: ``EVENTBUS_TOPIC_ARN``, else the topic named ``EVENTBUS_TOPIC`` in the queue's account and
    region (where a lookup by name would find it)."""
    if settings.topic_arn:
        return settings.topic_arn
    parts = (queue_arn.split(":") + [""] * 6)[:6]
    partition, region, account = parts[1] or "aws", parts[3], parts[4]
    return f"arn:{partition}:sns:{region}:{account}:{settings.topic}"


def find_problems(settings: EventBusSettings, consumed: Sequence[str], reader: QueueReader, app_spec: str) -> Findings:
    """Check the queues a worker consumes (their SQS names) against ``settings`` through ``reader``."""
    found = Findings()
    event_queue = settings.queue_name
    apply = f"run `eventbus topology apply -A {app_spec}`"
    if event_queue not in consumed:
        found.problems.append(
            f"the worker consumes {', '.join(consumed) or 'no queue'} (-Q) but EVENTBUS_QUEUE_NAME is {event_queue}: "
            f"consume it (-Q {','.join([event_queue, *consumed])}) or set EVENTBUS_QUEUE_NAME to the queue the topic "
            "delivers to"
        )
    for name in consumed:
        try:
            facts = reader.queue(name)
        except TransportError as exc:
            found.unchecked.append(f"could not check that queue {name} exists: {exc}")
            continue
        if facts is None:
            found.problems.append(_missing(name, event_queue, reader, apply, found))
        elif name == event_queue:
            _check_event_queue(settings, facts, reader, apply, found)
    return found


def _missing(name: str, event_queue: str, reader: QueueReader, apply: str, found: Findings) -> str:
    what = f"queue {name} does not exist: "
    what += apply if name == event_queue else "create it (kombu would create it without a dead-letter queue)"
    candidates: list[str] = []
    for prefix in dict.fromkeys([name[:3], event_queue[:3]]):
        try:
            candidates += reader.names_like(prefix)
        except TransportError as exc:
            found.unchecked.append(f"could not list queues like {name}: {exc}")
            break
    close = difflib.get_close_matches(name, [c for c in dict.fromkeys(candidates) if c != name], n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"{what} (or check -Q for a typo{hint})"


def _check_event_queue(
    settings: EventBusSettings, facts: QueueFacts, reader: QueueReader, apply: str, found: Findings
) -> None:
    if not facts.redrive_policy:
        found.problems.append(
            f"queue {facts.name} has no redrive policy (no dead-letter queue: events that cannot be handled would be "
            f"dropped or retried forever): {apply}"
        )
    if facts.fifo != settings.fifo:
        kind, wanted = ("a FIFO", "off") if facts.fifo else ("a standard", "on")
        found.problems.append(
            f"queue {facts.name} is {kind} queue but EVENTBUS_FIFO is {wanted}: SQS cannot change that, the queue "
            f"must be recreated (delete it, then {apply.removeprefix('run ')}) or EVENTBUS_FIFO set to match"
        )
    topic_arn = _topic_arn(settings, facts.arn)
    topic = topic_arn.rsplit(":", 1)[-1]
    try:
        subscribed = reader.subscribed(topic_arn, facts.arn)
    except TransportError as exc:
        found.unchecked.append(f"could not check that queue {facts.name} is subscribed to topic {topic}: {exc}")
        return
    if subscribed is None:
        found.problems.append(f"topic {topic} does not exist (EVENTBUS_TOPIC / EVENTBUS_TOPIC_ARN): {apply}")
    elif not subscribed:
        found.problems.append(f"queue {facts.name} is not subscribed to topic {topic}: no event reaches it; {apply}")


def log_effective_settings(settings: EventBusSettings) -> None:
    """One INFO block: each setting, its value (secrets and URL credentials masked) and where it came from."""
    rows = [(name, mask_url(value), source) for name, value, source in settings.effective()]
    width = max(len(name) for name, _, _ in rows)
    logger.info(
        "eventbus: effective settings:\n%s",
        "\n".join(f"  {name:<{width}} = {value} ({source})" for name, value, source in rows),
    )


def _app_spec(app: Celery) -> str:
    """The ``-A`` value the worker was started with, for the advice (``<app>`` when it cannot be told)."""
    argv = sys.argv
    for index, arg in enumerate(argv):
        if arg in ("-A", "--app") and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--app="):
            return arg.split("=", 1)[1]
    return "<app>"


def _refuse(lines: Sequence[str], why: str) -> None:
    for line in lines:
        logger.error("eventbus: %s", line)
    logger.critical("eventbus: the worker refuses to start: %s", why)
    raise WorkerShutdown(1)  # a SystemExit: Celery's signal dispatch lets it through, and the worker exits with 1


def check_worker(instance: Any) -> None:
    """The start-up checks of the worker ``instance`` (Celery's ``WorkController``); refuses by raising
    :class:`celery.exceptions.WorkerShutdown` (the worker stops with exit code 1)."""
    from eventbus.celery.consumer import SQSConsumer
    from eventbus.celery.subscribe import subscriptions_of

    app = instance.app
    consumer = instance.consumer_cls
    consumer_cls = symbol_by_name(consumer) if isinstance(consumer, str) else consumer  # type: ignore[no-untyped-call]
    if not (isinstance(consumer_cls, type) and issubclass(consumer_cls, SQSConsumer)):
        if subscriptions_of(app.tasks.values()):
            name = consumer if isinstance(consumer, str) else f"{consumer_cls.__module__}.{consumer_cls.__qualname__}"
            _refuse(
                [
                    f"this app has @subscribe tasks but its worker_consumer is {name}: call "
                    "eventbus.celery.configure(app) (it installs eventbus.celery.SQSConsumer)"
                ],
                "Celery's own consumer would delete every event as an unknown message",
            )
        return
    from eventbus.container import get_container

    settings = get_container().settings()
    log_effective_settings(settings)
    prefix = str((app.conf.broker_transport_options or {}).get("queue_name_prefix") or "")
    consumed = [sqs_queue_name(name, prefix) for name in app.amqp.queues.consume_from]
    from eventbus.adapters.aws.inspection import QueueInspector

    found = find_problems(settings, consumed, QueueInspector.from_settings(settings), _app_spec(app))
    for line in found.unchecked:
        logger.warning("eventbus: %s (the worker starts anyway)", line)
    if not found.problems:
        return
    if settings.startup_checks == "error":
        _refuse(found.problems, "fix the above, or set EVENTBUS_STARTUP_CHECKS=warn to start anyway")
    for line in found.problems:
        logger.warning("eventbus: %s (EVENTBUS_STARTUP_CHECKS=warn: starting anyway)", line)
