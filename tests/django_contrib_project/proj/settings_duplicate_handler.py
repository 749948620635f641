"""Two @subscribe tasks for one event name (eventbus.E004)."""

from tests.django_contrib_project.base import *  # noqa: F403
from tests.django_contrib_project.base import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.django_contrib_project.duplicates"]
