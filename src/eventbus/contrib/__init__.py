"""Integrations with frameworks: :mod:`eventbus.contrib.django`."""

__all__: list[str] = []
