"""Everything right: ``manage.py check`` reports nothing."""

from tests.django_contrib_project.base import *  # noqa: F403
