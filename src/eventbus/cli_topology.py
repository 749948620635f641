"""``eventbus topology plan|apply|check -A app``: the app's topology (its topic, queue, dead-letter queue,
subscription with the filter policy from its ``@subscribe`` handlers, queue policy, tags, and with
``EVENTBUS_LARGE_PAYLOAD_BUCKET`` the claim-check bucket and its expiry rule; with ``EVENTBUS_FIFO`` all FIFO)
against what is deployed.

``plan`` prints the changes that would make the deployment match the code, ``apply`` makes them, ``check`` prints
each difference and exits 1 when there is any (a deploy gate). Nothing is deleted unless ``--prune`` is given; a
queue or topic whose FIFO-ness differs from the code's is drift that ``plan`` and ``apply`` refuse (exit 2): AWS
cannot change it, it must be recreated.
Clients come from the ``EVENTBUS_*`` settings the app runs with (boto3's credential chain; ``EVENTBUS_ENDPOINT_URL``
for an emulator or LocalStack). Exit status: 0 done, 1 drift (``check``), 2 error (one line on stderr).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Final, TextIO

from pydantic import ValidationError

from eventbus.core.topology import Change, Drift, FilterScope, Topology
from eventbus.core.topology_plan import drift, plan
from eventbus.errors import EventBusError
from eventbus.ports import TopologyStore
from eventbus.settings import EventBusSettings

__all__ = ["EXIT_DRIFT", "EXIT_ERROR", "EXIT_OK", "build_parser", "run_topology"]

EXIT_OK: Final = 0
#: ``check`` found the deployment differs from the code.
EXIT_DRIFT: Final = 1
#: Settings, the app, or the transport failed; argparse uses 2 for usage errors too.
EXIT_ERROR: Final = 2

_DESCRIPTION = "Compare, and make, the SNS/SQS topology a Celery app's code implies with what is deployed."
_EPILOG = (
    "exit status: 0 done (check: no drift), 1 drift (check), 2 error. Settings are the EVENTBUS_* environment "
    "(EVENTBUS_TOPIC, EVENTBUS_QUEUE_NAME, EVENTBUS_SERVICE, EVENTBUS_ENVIRONMENT, EVENTBUS_REGION, "
    "EVENTBUS_ENDPOINT_URL, ...); credentials are boto3's chain."
)


def build_parser() -> argparse.ArgumentParser:
    """The ``eventbus topology`` argument parser: one subcommand each for ``plan``, ``apply`` and ``check``."""
    parser = argparse.ArgumentParser(prog="eventbus topology", description=_DESCRIPTION, epilog=_EPILOG)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{plan,apply,check}")
    helps = {
        "plan": "print the changes that would make the deployment match the code (changes nothing)",
        "apply": "make those changes (idempotent: a second apply changes nothing)",
        "check": "print each difference between the deployment and the code; exit 1 on any",
    }
    for name, text in helps.items():
        sub = commands.add_parser(name, help=text, description=text, epilog=_EPILOG)
        sub.add_argument(
            "-A", "--app", required=True, help="the Celery app, as for celery -A: pkg.module, pkg.module:app"
        )
        if name != "check":
            sub.add_argument(
                "--prune",
                action="store_true",
                help="also unsubscribe the queue from topics the code no longer uses (nothing is deleted otherwise)",
            )
        sub.add_argument("--json", action="store_true", help="machine-readable output on stdout (for CI, review)")
    return parser


def run_topology(
    argv: Sequence[str] | None = None,
    *,
    store: TopologyStore | None = None,
    settings: EventBusSettings | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run ``eventbus topology`` with ``argv``; returns the exit status.

    ``store`` and ``settings`` default to the AWS adapter and the settings of the loaded app's container (tests pass
    their own).
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    args = build_parser().parse_args(argv)
    prefix = f"eventbus topology {args.command}"
    try:
        topology, store = _prepare(args.app, store, settings)
        for warning in topology.warnings:
            print(f"warning: {warning}", file=err)
        if args.command == "check":
            found = drift(topology, store.read(topology))
            _report_drift(topology, found, args, out)
            return EXIT_DRIFT if found else EXIT_OK
        changes = plan(topology, store.read(topology), prune=args.prune)
        if args.command == "apply" and changes:
            store.apply(topology, changes)
        _report_changes(topology, changes, args, out)
        return EXIT_OK
    except EventBusError as exc:
        print(f"{prefix}: {exc.code}: {_one_line(str(exc))}", file=err)
    except ValidationError as exc:
        print(f"{prefix}: ConfigurationError: invalid settings: {_validation_summary(exc)}", file=err)
    return EXIT_ERROR


def _prepare(
    spec: str, store: TopologyStore | None, settings: EventBusSettings | None
) -> tuple[Topology, TopologyStore]:
    """Load the app, then derive its topology from the settings it runs with."""
    # imported here: they pull in Celery and boto3, which ``eventbus --help`` should not wait for
    from eventbus.celery.topology import load_app, topology_for

    app = load_app(spec)
    if settings is None:
        from eventbus.container import get_container

        # the app's module may have configured a container of its own: its settings are the ones its workers use
        settings = get_container().settings()
    topology = topology_for(app, settings)
    if store is None:
        from eventbus.adapters.aws import AwsTopologyStore, s3_client, sns_client, sqs_client

        s3 = s3_client(settings) if topology.payload_bucket is not None else None
        store = AwsTopologyStore(sns_client(settings), sqs_client(settings), s3)
    return topology, store


def _report_changes(topology: Topology, changes: Sequence[Change], args: argparse.Namespace, out: TextIO) -> None:
    applied = args.command == "apply"
    if args.json:
        document = {
            "command": args.command,
            "app": args.app,
            "prune": args.prune,
            "applied": applied,
            "changes": [_change_json(change) for change in changes],
            "warnings": list(topology.warnings),
            "topology": _topology_json(topology),
        }
        print(json.dumps(document, indent=2, sort_keys=True, default=str), file=out)
        return
    print(_summary(topology), file=out)
    if not changes:
        print("no changes: the deployment matches the code", file=out)
        return
    for change in changes:
        print(f"  {change}", file=out)
    count = f"{len(changes)} change{'s' if len(changes) != 1 else ''}"
    print(
        f"{count} applied" if applied else f"{count} planned: eventbus topology apply -A {args.app} makes them",
        file=out,
    )


def _report_drift(topology: Topology, found: Sequence[Drift], args: argparse.Namespace, out: TextIO) -> None:
    if args.json:
        document = {
            "command": "check",
            "app": args.app,
            "drift": [{"kind": item.kind.value, "detail": item.detail} for item in found],
            "warnings": list(topology.warnings),
            "topology": _topology_json(topology),
        }
        print(json.dumps(document, indent=2, sort_keys=True, default=str), file=out)
        return
    print(_summary(topology), file=out)
    if not found:
        print("no drift: the deployment matches the code", file=out)
        return
    for item in found:
        print(f"  drift {item}", file=out)
    print(f"{len(found)} difference{'s' if len(found) != 1 else ''} (eventbus topology plan shows the fix)", file=out)


def _summary(topology: Topology) -> str:
    """One line naming what the topology is about, so a log shows which queue a plan or check was for."""
    topics = ", ".join(topology.publishes_to) or "none"
    bucket = topology.payload_bucket
    large = f"; large events through bucket {bucket.name}" if bucket else ""
    queue = f"{topology.queue.name} (FIFO)" if topology.queue.fifo else topology.queue.name
    return f"queue {queue}; publishes to {topics}; subscribes to {_subscriptions_text(topology)}{large}"


def _subscriptions_text(topology: Topology) -> str:
    if not topology.subscriptions:
        return "nothing"
    parts = []
    for subscription in topology.subscriptions:
        names = subscription.event_names
        events = "every event" if names is None else f"{len(names)} event name{'s' if len(names) != 1 else ''}"
        if names is not None and subscription.filter_scope is FilterScope.ATTRIBUTES:
            events += " by attribute"
        parts.append(f"{subscription.topic} ({events})")
    return ", ".join(parts)


def _change_json(change: Change) -> dict[str, Any]:
    return {"kind": change.kind.value, "resource": change.resource, "values": dict(change.values), "text": str(change)}


def _topology_json(topology: Topology) -> dict[str, Any]:
    """The topology as plain JSON types: the document a reviewer diffs between two plans."""
    # field by field rather than dataclasses.asdict: mappings may be read-only proxies, which asdict cannot copy
    return {
        "publishes_to": list(topology.publishes_to),
        "queue": _plain(topology.queue),
        "subscriptions": [_plain(subscription) for subscription in topology.subscriptions],
        "payload_bucket": _plain(topology.payload_bucket) if topology.payload_bucket else None,
    }


def _plain(spec: Any) -> dict[str, Any]:
    plain: dict[str, Any] = {}
    for item in dataclasses.fields(spec):
        value = getattr(spec, item.name)
        plain[item.name] = (
            dict(value) if isinstance(value, Mapping) else list(value) if isinstance(value, tuple) else value
        )
    return plain


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _validation_summary(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return _one_line("; ".join(parts))
