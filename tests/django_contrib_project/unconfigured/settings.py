"""The base settings, for the unconfigured app."""

from tests.django_contrib_project.base import *  # noqa: F403
