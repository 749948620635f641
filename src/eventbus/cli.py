"""The ``eventbus`` command: ``eventbus emulator``, ``eventbus demo``, ``eventbus topology``."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]

_COMMANDS = {
    "emulator": "run the embedded SNS/SQS emulator (-A app: provision the app's topology)",
    "demo": "run the seed's handlers end to end on the embedded emulator",
    "topology": "plan, apply or check the SNS/SQS topology of a Celery app (-A app)",
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
    # each command is imported only when run: the emulator needs moto, topology Celery and boto3
    if command == "emulator":
        from eventbus.emulator.cli import run_emulator

        return run_emulator(rest)
    if command == "demo":
        from eventbus.demo.runner import run_demo

        return run_demo(rest)
    if command == "topology":
        from eventbus.cli_topology import run_topology

        return run_topology(rest)
    parser.error(f"unknown command {command!r}")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
