"""``manage.py eventbus_relay`` and ``manage.py eventbus_topology``."""

__all__: list[str] = []
