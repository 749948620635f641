"""``eventbus asyncapi -A app``: the AsyncAPI 3.0 document of a Celery app's service.

What it subscribes to is the app's ``@subscribe`` handlers (event name and payload class); what it publishes is its
callback tasks' ``payload_cls`` and ``exception_payload_cls`` and the payload classes declared with
:func:`eventbus.payload.publishes` in the modules the app imports. The topic, queue and service name come from the
``EVENTBUS_*`` settings the app runs with (nothing is contacted). The document is built by
:func:`eventbus.core.asyncapi.asyncapi_document`. Exit status: 0 written, 2 error (one line on stderr, nothing
written).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, TextIO

from pydantic import ValidationError

from eventbus.core.asyncapi import asyncapi_document
from eventbus.core.payload import EventPayload, declared_publications
from eventbus.errors import EventBusError
from eventbus.settings import EventBusSettings

__all__ = ["EXIT_ERROR", "EXIT_OK", "build_parser", "document_for", "run_asyncapi"]

EXIT_OK: Final = 0
#: The app, the settings, the format or the output failed (argparse uses 2 for usage errors too).
EXIT_ERROR: Final = 2

_EPILOG = (
    "Settings are the EVENTBUS_* environment the app runs with (EVENTBUS_SERVICE, EVENTBUS_TOPIC, "
    "EVENTBUS_QUEUE_NAME, EVENTBUS_ENVIRONMENT, ...); nothing is contacted. Exit status: 0 written, 2 error."
)


def build_parser() -> argparse.ArgumentParser:
    """The ``eventbus asyncapi`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="eventbus asyncapi",
        description="Write the AsyncAPI 3.0 document of what a Celery app's service publishes and subscribes to.",
        epilog=_EPILOG,
    )
    parser.add_argument(
        "-A", "--app", required=True, help="the Celery app, as for celery -A: pkg.module, pkg.module:app"
    )
    parser.add_argument("-o", "--output", help="write the document to this file (default: standard output)")
    parser.add_argument(
        "--format", default="json", help="json (default) or yaml (yaml needs PyYAML: pip install pyyaml)"
    )
    parser.add_argument(
        "--service-version", default="unversioned", help="the document's info.version (default: unversioned)"
    )
    parser.add_argument("--description", default="", help="the document's opening paragraph (markdown)")
    return parser


def run_asyncapi(
    argv: Sequence[str] | None = None,
    *,
    settings: EventBusSettings | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run ``eventbus asyncapi`` with ``argv``; returns the exit status.

    ``settings`` defaults to the settings of the loaded app's container (tests pass their own).
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse printed already
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    prefix = "eventbus asyncapi"
    try:
        dump = _dumper(args.format)
        document = document_for(args.app, settings, version=args.service_version, description=args.description)
        text = dump(document)
        if args.output:
            Path(args.output).write_text(text, encoding="utf-8")
        else:
            out.write(text)
        return EXIT_OK
    except EventBusError as exc:
        print(f"{prefix}: {exc.code}: {_one_line(str(exc))}", file=err)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) or "(settings)" for e in exc.errors()[:5])
        print(f"{prefix}: ConfigurationError: invalid settings: {fields}", file=err)
    except _UsageError as exc:
        print(f"{prefix}: {exc}", file=err)
    except OSError as exc:
        print(f"{prefix}: cannot write {args.output!r}: {exc.strerror or exc}", file=err)
    return EXIT_ERROR


def document_for(
    spec: str, settings: EventBusSettings | None = None, *, version: str = "unversioned", description: str = ""
) -> dict[str, Any]:
    """The AsyncAPI document of the Celery app ``spec`` names, with ``settings`` (default: its container's).

    Raises:
        ConfigurationError: the app cannot be loaded, or two payload classes claim one event name.
    """
    # imported here: Celery is heavy, and ``eventbus --help`` should not wait for it
    from eventbus.celery.subscribe import subscriptions_of
    from eventbus.celery.tasks import CeleryTaskWithCallback
    from eventbus.celery.topology import load_app, topology_for

    app = load_app(spec)
    if settings is None:
        from eventbus.container import get_container

        # the app's module may have configured a container of its own: its settings are the ones its workers use
        settings = get_container().settings()
    tasks = list(app.tasks.values())
    subscribed = {subscription.event_name: subscription.payload_cls for subscription in subscriptions_of(tasks)}
    published: dict[type[EventPayload], None] = {}
    for task in tasks:
        if isinstance(task, CeleryTaskWithCallback):
            for cls in (task.payload_cls, task.exception_payload_cls):
                if cls is not None:
                    published[cls] = None
    published.update(dict.fromkeys(declared_publications()))
    return asyncapi_document(
        topology_for(app, settings),
        service=settings.service,
        version=version,
        subscribed=subscribed,
        published=published,
        description=description,
    )


class _UsageError(Exception):
    """A bad option value found after parsing (an unknown format, PyYAML missing)."""


def _dumper(name: str) -> Callable[[dict[str, Any]], str]:
    """The function that turns the document into text in format ``name``."""
    if name == "json":
        return lambda document: json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if name == "yaml":
        try:
            # imported by name: PyYAML is optional, and its stubs may be missing
            yaml: Any = importlib.import_module("yaml")
        except ImportError:
            raise _UsageError("--format yaml needs PyYAML: pip install pyyaml (or use --format json)") from None
        return lambda document: str(yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120))
    raise _UsageError(f"unknown format {name!r}: use json or yaml")


def _one_line(text: str) -> str:
    return " ".join(text.split())
