"""The embedded SNS/SQS emulator (moto in server mode) and provisioning."""

from eventbus.emulator.provision import Provisioned, ProvisionedQueue, provision
from eventbus.emulator.server import EMULATOR_ACCOUNT_ID, EmulatorServer

__all__ = ["EMULATOR_ACCOUNT_ID", "EmulatorServer", "Provisioned", "ProvisionedQueue", "provision"]
