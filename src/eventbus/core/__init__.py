"""The transport-, runtime- and ORM-neutral core: envelope, payloads, naming, ports, dispatch, callback policy.

Imports no adapter.
"""
