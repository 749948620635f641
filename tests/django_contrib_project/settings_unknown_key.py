"""A key of EVENTBUS that is no setting (eventbus.E001)."""

from tests.django_contrib_project.base import *  # noqa: F403
from tests.django_contrib_project.base import EVENTBUS

EVENTBUS = {**EVENTBUS, "ENDPOINT_URLL": "http://localhost:4566"}
