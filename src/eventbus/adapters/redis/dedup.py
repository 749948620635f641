"""The Redis DeduplicationStore: one hash ``{state, owner}`` per key, expired by Redis itself.

Each operation is one Lua script, so it is atomic on the server whatever other clients do. Leases and retention are
Redis expiries (the server's clock), so the workers' clocks do not matter and ``purge_expired`` has nothing to do.
"""

from __future__ import annotations

import math

import redis

from eventbus.errors import DeduplicationError
from eventbus.ports import Claim, DeduplicationStore

_IN_PROGRESS, _DONE, _ACQUIRED = Claim.IN_PROGRESS.value, Claim.DONE.value, Claim.ACQUIRED.value

# KEYS[1] the record, ARGV[1] the owner, ARGV[2] the lease in ms
_CLAIM = f"""
local state = redis.call('HGET', KEYS[1], 'state')
if state == '{_DONE}' then
  return '{_DONE}'
end
if state and redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  return '{_IN_PROGRESS}'
end
redis.call('HSET', KEYS[1], 'state', '{_IN_PROGRESS}', 'owner', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return '{_ACQUIRED}'
"""

# KEYS[1] the record, ARGV[1] the owner, ARGV[2] the retention in ms
_COMPLETE = f"""
redis.call('HSET', KEYS[1], 'state', '{_DONE}', 'owner', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS[1] the record, ARGV[1] the owner
_RELEASE = f"""
if redis.call('HGET', KEYS[1], 'state') == '{_IN_PROGRESS}' and redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _milliseconds(seconds: float) -> int:
    """A PEXPIRE argument: at least 1 ms, since 0 or less would delete the key at once."""
    return max(1, math.ceil(seconds * 1000))


class RedisDeduplicationStore(DeduplicationStore):
    """Deduplication records as Redis hashes named ``prefix + key``."""

    def __init__(self, client: redis.Redis, prefix: str = "eventbus:dedup:") -> None:
        self.client = client
        self.prefix = prefix
        self._claim = client.register_script(_CLAIM)
        self._complete = client.register_script(_COMPLETE)
        self._release = client.register_script(_RELEASE)

    def claim(self, key: str, owner: str, lease: float) -> Claim:
        """See :meth:`DeduplicationStore.claim`."""
        try:
            answer = self._claim(keys=[self.prefix + key], args=[owner, _milliseconds(lease)])
        except redis.RedisError as exc:
            raise DeduplicationError(f"claim of {key!r} failed: {type(exc).__name__}") from exc
        if isinstance(answer, bytes):
            answer = answer.decode()
        try:
            return Claim(answer)
        except ValueError as exc:
            raise DeduplicationError(f"claim of {key!r} failed: unexpected answer from Redis") from exc

    def complete(self, key: str, owner: str, keep_for: float) -> None:
        """See :meth:`DeduplicationStore.complete`."""
        try:
            self._complete(keys=[self.prefix + key], args=[owner, _milliseconds(keep_for)])
        except redis.RedisError as exc:
            raise DeduplicationError(f"complete of {key!r} failed: {type(exc).__name__}") from exc

    def release(self, key: str, owner: str) -> None:
        """See :meth:`DeduplicationStore.release`."""
        try:
            self._release(keys=[self.prefix + key], args=[owner])
        except redis.RedisError as exc:
            raise DeduplicationError(f"release of {key!r} failed: {type(exc).__name__}") from exc

    def purge_expired(self) -> int:
        """Nothing to do: Redis deletes expired keys by itself."""
        return 0


def redis_deduplication_store(url: str, prefix: str = "eventbus:dedup:") -> RedisDeduplicationStore:
    """A store on a new client for ``url`` (``redis://host:port/db``)."""
    return RedisDeduplicationStore(redis.Redis.from_url(url), prefix)
