"""The embedded SNS/SQS emulator (moto in server mode); it provisions through :mod:`eventbus.adapters.aws`.

Needs moto (the ``emulator`` extra: ``pip install 'eventbus[emulator]'``).
"""

from eventbus.emulator.server import EMULATOR_ACCOUNT_ID, EmulatorServer

__all__ = ["EMULATOR_ACCOUNT_ID", "EmulatorServer"]
