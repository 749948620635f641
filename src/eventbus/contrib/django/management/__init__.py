"""Management commands of :mod:`eventbus.contrib.django`."""

__all__: list[str] = []
