"""An EVENTBUS value of the wrong type (eventbus.E001, named as written, the value not echoed)."""

from tests.django_contrib_project.base import *  # noqa: F403
from tests.django_contrib_project.base import EVENTBUS

EVENTBUS = {**EVENTBUS, "WAIT_TIME_SECONDS": "abc"}
