"""A callback task whose payload class needs a field the model lacks (eventbus.E003)."""

from tests.django_contrib_project.base import *  # noqa: F403
from tests.django_contrib_project.base import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.django_contrib_project.badpayload"]
