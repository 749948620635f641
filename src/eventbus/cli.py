"""The ``eventbus`` command: ``eventbus emulator``, ``eventbus demo``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``eventbus`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="eventbus", description="eventbus developer tools")
    parser.add_argument("command", choices=["emulator", "demo"], help="what to run")
    if not args or args[0] in {"-h", "--help"}:
        parser.print_help()
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "emulator":
        from eventbus.emulator.cli import run_emulator

        return run_emulator(rest)
    if command == "demo":
        from eventbus.demo.runner import run_demo

        return run_demo(rest)
    parser.error(f"unknown command {command!r}")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
