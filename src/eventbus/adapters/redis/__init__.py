"""The Redis adapter: a deduplication store whose records Redis expires by itself.

Needs the ``redis`` package (``pip install 'eventbus[redis]'``). Import from this package
(``from eventbus.adapters.redis import RedisDeduplicationStore``), not from its modules.
"""

try:
    import redis as _redis  # noqa: F401  (fail here, naming the extra, rather than deep inside a module)
except ImportError as exc:
    raise ImportError("eventbus's Redis adapter needs the redis package: pip install 'eventbus[redis]'") from exc

from eventbus.adapters.redis.dedup import RedisDeduplicationStore, redis_deduplication_store

__all__ = ["RedisDeduplicationStore", "redis_deduplication_store"]
