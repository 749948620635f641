"""Adapters, one package per technology: ``memory``, ``redis``, ``django_orm``, ``sqlalchemy`` and the AWS ones.

Each imports the core and the ports only, never another adapter. Import the one you need from its package
(``from eventbus.adapters.memory import InMemoryPublisher``): optional extras stay optional, and a missing one
raises an ImportError naming the extra to install.
"""

__all__: list[str] = []
