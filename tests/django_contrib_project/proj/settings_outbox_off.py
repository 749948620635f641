"""The outbox off: ``eventbus_relay`` refuses."""

from tests.django_contrib_project.base import *  # noqa: F403
from tests.django_contrib_project.base import EVENTBUS

EVENTBUS = {**EVENTBUS, "OUTBOX": "off"}
