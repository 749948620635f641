"""Adapters, one module each: ``sns``, ``memory``, ``memory_repository``, ``django_orm``, ``sqlalchemy``.

Each imports the core only, never another adapter; import the one you need (optional extras stay optional).
"""
