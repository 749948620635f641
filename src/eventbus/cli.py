"""The ``eventbus`` command: emulator, demo, topology, dlq, publish, tail, asyncapi, health."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["main"]

_COMMANDS = {
    "emulator": "run the embedded SNS/SQS emulator (-A app: provision the app's topology)",
    "demo": "run the seed's handlers end to end on the embedded emulator",
    "topology": "plan, apply or check the SNS/SQS topology of a Celery app (-A app)",
    "dlq": "peek at or redrive a queue's dead letters (decoded, secrets masked)",
    "publish": "publish one event to the topic (EVENT --payload JSON)",
    "tail": "print the events passing through the topic (a temporary queue, removed on exit)",
    "asyncapi": "write the AsyncAPI 3.0 document of a Celery app (-A app)",
    "health": "exit 0 if the worker's health file is fresh, 1 if not (EVENTBUS_HEALTH_FILE)",
}

#: Each command's module and function: imported only when run (the emulator needs moto, topology Celery and boto3).
_RUNNERS = {
    "emulator": ("eventbus.emulator.cli", "run_emulator"),
    "demo": ("eventbus.demo.runner", "run_demo"),
    "topology": ("eventbus.cli_topology", "run_topology"),
    "dlq": ("eventbus.cli_dlq", "run_dlq"),
    "publish": ("eventbus.cli_events", "run_publish"),
    "tail": ("eventbus.cli_events", "run_tail"),
    "asyncapi": ("eventbus.cli_asyncapi", "run_asyncapi"),
    "health": ("eventbus.cli_health", "run_health"),
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``eventbus`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="eventbus",
        description="eventbus developer tools",
        epilog="\n".join(f"  {name:<9} {text}" for name, text in _COMMANDS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=list(_COMMANDS), help="what to run (eventbus COMMAND --help: its options)")
    if not args or args[0] in {"-h", "--help"}:
        parser.print_help()
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command not in _RUNNERS:
        parser.error(f"unknown command {command!r}")
    import importlib

    module, function = _RUNNERS[command]
    run: Any = getattr(importlib.import_module(module), function)
    return int(run(rest))


if __name__ == "__main__":
    raise SystemExit(main())
