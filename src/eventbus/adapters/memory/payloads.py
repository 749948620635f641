"""In-memory payload store: claim-checked bodies kept in a dict (tests, the in-memory bus)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence

from eventbus.core.claim_check import Pointer
from eventbus.errors import ClaimCheckError
from eventbus.ports import PayloadStore


class InMemoryPayloadStore(PayloadStore):
    """Bodies by (bucket, key) in this process; ``objects`` is there for tests to look at and tamper with."""

    def __init__(self, bucket: str = "in-memory") -> None:
        self.bucket = bucket
        self.objects: dict[Pointer, bytes] = {}
        self._lock = threading.Lock()

    def put(self, body: bytes) -> Pointer:
        """Keep ``body`` under a new UUID key."""
        pointer = Pointer(self.bucket, str(uuid.uuid4()))
        with self._lock:
            self.objects[pointer] = bytes(body)
        return pointer

    def get(self, pointer: Pointer, max_bytes: int) -> bytes:
        """The kept body; ``claim-check-missing`` when there is none, ``oversized`` past ``max_bytes``."""
        with self._lock:
            body = self.objects.get(pointer)
        if body is None:
            raise ClaimCheckError("claim-check-missing", f"{pointer} does not exist", permanent=True)
        if len(body) > max_bytes:
            raise ClaimCheckError(
                "oversized", f"{pointer} holds {len(body)} bytes, limit is {max_bytes}", permanent=True
            )
        return body

    def delete(self, pointers: Sequence[Pointer]) -> None:
        """Forget these bodies (missing ones included)."""
        with self._lock:
            for pointer in pointers:
                self.objects.pop(pointer, None)
