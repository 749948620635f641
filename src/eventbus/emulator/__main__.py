"""``python -m eventbus.emulator``."""

from eventbus.emulator.cli import run_emulator

raise SystemExit(run_emulator())
