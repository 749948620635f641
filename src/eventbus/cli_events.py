"""``eventbus publish EVENT --payload JSON`` and ``eventbus tail``: send one event to the topic, watch the topic.

``publish`` builds the envelope as the library does (:class:`~eventbus.EventPublisher`: ``publishDate``,
``publisherName``, a new ``traceparent``) and sends it through SNS to an existing topic (``--topic``, else
``EVENTBUS_TOPIC_ARN`` / ``EVENTBUS_TOPIC``; never created), then prints SNS's message id. ``tail`` subscribes a
temporary queue of its own to the topic (raw delivery, a queue policy allowing that topic only), prints each event as
it passes (masked as ``eventbus dlq peek`` shows them), and removes the queue and the subscription when it stops:
Ctrl-C, SIGTERM, ``--count N`` events printed, ``--seconds S`` elapsed, or an error.

Exit status: 0 done, 1 (``tail``) no event seen before ``--count``/``--seconds`` ended it, 2 bad input or an error
(one line on stderr; nothing sent).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, TextIO

from pydantic import ConfigDict

from eventbus.core.dead_letters import LetterFilter, describe
from eventbus.core.payload import EventPayload
from eventbus.errors import EventBusError

__all__ = ["EXIT_ERROR", "EXIT_NOTHING", "EXIT_OK", "run_publish", "run_tail"]

EXIT_OK: Final = 0
EXIT_NOTHING: Final = 1
EXIT_ERROR: Final = 2


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace | int:
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed its one line already
        return EXIT_OK if exc.code == 0 else EXIT_ERROR


def _fail(prefix: str, text: str, err: TextIO) -> int:
    print(f"{prefix}: {' '.join(text.split())}", file=err)
    return EXIT_ERROR


def _payload_class(event_name: str, personal: bool) -> type[EventPayload]:
    """A payload class for any JSON object, published under ``event_name``."""

    class CommandLinePayload(EventPayload):
        model_config = ConfigDict(extra="allow")
        event_name: ClassVar[str | None] = None
        contains_personal_data: ClassVar[bool] = False

    CommandLinePayload.event_name = event_name
    CommandLinePayload.contains_personal_data = personal
    return CommandLinePayload


def run_publish(argv: list[str], *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run ``eventbus publish`` with ``argv``; returns the exit status."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    parser = argparse.ArgumentParser(prog="eventbus publish", description="Publish one event to the SNS topic.")
    parser.add_argument("event", metavar="EVENT", help="the event name (metadata.eventName)")
    parser.add_argument("--payload", required=True, metavar="JSON", help="the payload: a JSON object")
    parser.add_argument("--entity-id", default=None, help="metadata.entityId")
    parser.add_argument("--topic", default=None, help="topic name or ARN (default: EVENTBUS_TOPIC_ARN, EVENTBUS_TOPIC)")
    parser.add_argument("--personal-data", action="store_true", help="mark the event containsPersonalData")
    args = _parse(parser, argv)
    if isinstance(args, int):
        return args
    prefix = "eventbus publish"
    if not args.event.strip():
        return _fail(prefix, "EVENT must be a non-empty event name", err)
    try:
        payload = json.loads(args.payload)
    except (ValueError, RecursionError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        return _fail(prefix, f"--payload is not valid JSON{where}: nothing sent", err)
    if not isinstance(payload, dict):
        return _fail(prefix, f"--payload must be a JSON object, got {type(payload).__name__}: nothing sent", err)
    try:
        from eventbus.adapters.aws import sns_client
        from eventbus.adapters.aws.dead_letters import find_topic
        from eventbus.adapters.aws.sns import SnsPublisher
        from eventbus.container import get_container
        from eventbus.core.publishing import EventPublisher

        settings = get_container().settings()
        client = sns_client(settings)
        topic_arn = find_topic(client, args.topic or settings.topic_arn or settings.topic)
        port = SnsPublisher(client, topic_arn=topic_arn, max_message_bytes=settings.max_message_bytes)
        publisher = EventPublisher(port, publisher_name=settings.publisher_name)
        model = _payload_class(args.event, args.personal_data).model_validate(payload)
        message_id = publisher.publish(model, entity_id=args.entity_id)
    except EventBusError as exc:
        return _fail(prefix, f"{exc.code}: {exc}: nothing sent", err)
    print(message_id, file=out)
    print(f"{prefix}: {args.event} published to {topic_arn}", file=err)
    return EXIT_OK


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` (main thread only: signal handlers can be set nowhere else)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_tail(
    argv: list[str],
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Run ``eventbus tail`` with ``argv``; returns the exit status. ``stop`` ends it from another thread."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    parser = argparse.ArgumentParser(
        prog="eventbus tail",
        description="Print the events passing through the topic (a temporary queue, removed on exit).",
    )
    parser.add_argument("--topic", default=None, help="topic name or ARN (default: EVENTBUS_TOPIC_ARN, EVENTBUS_TOPIC)")
    parser.add_argument("--event", action="append", default=[], help="only this event name (repeatable)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line on stdout")
    parser.add_argument("--count", type=int, default=None, help="stop after N events printed")
    parser.add_argument("--seconds", type=float, default=None, help="stop after S seconds")
    args = _parse(parser, argv)
    if isinstance(args, int):
        return args
    prefix = "eventbus tail"
    if (args.count is not None and args.count < 1) or (args.seconds is not None and args.seconds <= 0):
        return _fail(prefix, "--count and --seconds must be positive", err)
    stop = stop or threading.Event()
    subscription: Any = None
    try:
        from eventbus.adapters.aws import sns_client, sqs_client
        from eventbus.adapters.aws.dead_letters import TemporarySubscription, find_topic
        from eventbus.container import get_container

        settings = get_container().settings()
        sns = sns_client(settings)
        topic_arn = find_topic(sns, args.topic or settings.topic_arn or settings.topic)
        with _stop_on_signals(stop):
            subscription = TemporarySubscription(sns, sqs_client(settings), topic_arn)
            subscription.open()
            print(f"{prefix}: {topic_arn} through {subscription.queue_name} (Ctrl-C stops)", file=err, flush=True)
            printed = _follow(subscription, LetterFilter.of(args.event), args, stop, out, settings.max_message_bytes)
    except EventBusError as exc:
        return _fail(prefix, f"{exc.code}: {exc}", err)
    finally:
        if subscription is not None:
            for left in subscription.close():
                print(f"{prefix}: could not remove {left}: remove it by hand", file=err)
    print(f"{prefix}: {printed} events; temporary queue and subscription removed", file=err)
    return EXIT_OK if printed or (args.count is None and args.seconds is None) else EXIT_NOTHING


def _follow(subscription: Any, letters: LetterFilter, args: Any, stop: threading.Event, out: TextIO, limit: int) -> int:
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    printed = 0
    while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
        for letter in subscription.receive(wait=1):
            view = describe(letter, datetime.now(UTC), max_bytes=limit)
            if not letters.matches(view):
                continue
            if args.json:
                document = {k: v for k, v in view.to_json().items() if k not in ("reason", "receiveCount")}
                print(json.dumps(document, ensure_ascii=False, default=str, sort_keys=True), file=out, flush=True)
            elif view.is_envelope:
                payload = json.dumps(view.payload, ensure_ascii=False, default=str, sort_keys=True)
                entity = view.entity_id or "-"
                print(
                    f"{view.event_name}  entity {entity}  {view.message_id}  payload: {payload}", file=out, flush=True
                )
            else:
                print(f"not an envelope ({view.problem}): {view.preview}", file=out, flush=True)
            printed += 1
            if args.count is not None and printed >= args.count:
                return printed
    return printed
