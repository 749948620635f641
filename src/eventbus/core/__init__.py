"""The transport-, runtime- and ORM-neutral core: envelope, payloads, naming, registry, dispatch (the fate table),
tracing, redaction, callback policy, idempotency, outbox relay.

Imports no adapter and no vendor library (pydantic is its modelling language). Its public names are re-exported where
users import them: :mod:`eventbus` (envelope, publisher), :mod:`eventbus.payload`, :mod:`eventbus.ports`,
:mod:`eventbus.errors`; the modules here are the implementation.
"""

__all__: list[str] = []
