"""The S3 payload store: where claim-checked events' bodies live (:mod:`eventbus.core.claim_check`).

Keys are fresh UUIDs, as AWS's extended clients make them, in one bucket; ``get`` and ``delete`` take any bucket a
pointer names (a message from another service may point into its own bucket). ``delete`` goes out as
``DeleteObjects`` (up to 1,000 keys a call). Failures become :class:`~eventbus.errors.ClaimCheckError` naming the
object and the S3 error code, never the body.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from eventbus.core.claim_check import Pointer
from eventbus.errors import ClaimCheckError
from eventbus.ports import PayloadStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

#: S3's limit on keys per ``DeleteObjects`` call.
_DELETE_BATCH: Final = 1000
_MISSING: Final = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound"})
_DENIED: Final = frozenset({"AccessDenied", "403", "Forbidden", "AllAccessDisabled", "InvalidObjectState"})


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "?"))


class S3PayloadStore(PayloadStore):
    """Claim-checked bodies in S3: ``put`` into ``bucket``, ``get``/``delete`` from the bucket each pointer names."""

    def __init__(self, client: S3Client | Any, bucket: str = "") -> None:
        self._client = client
        self.bucket = bucket

    def put(self, body: bytes) -> Pointer:
        """Store ``body`` under a new UUID key in ``bucket`` (a store without one only reads and deletes)."""
        if not self.bucket:
            raise ClaimCheckError("claim-check-unstored", "no bucket to store large events in", permanent=True)
        key = str(uuid.uuid4())
        try:
            self._client.put_object(Bucket=self.bucket, Key=key, Body=body)
        except ClientError as exc:
            code = _code(exc)
            raise ClaimCheckError(
                "claim-check-unstored", f"S3 PutObject to bucket {self.bucket!r} failed ({code})", permanent=False
            ) from exc
        except BotoCoreError as exc:
            raise ClaimCheckError(
                "claim-check-unstored",
                f"S3 unreachable for bucket {self.bucket!r} ({type(exc).__name__})",
                permanent=False,
            ) from exc
        return Pointer(self.bucket, key)

    def get(self, pointer: Pointer, max_bytes: int) -> bytes:
        """The stored body; its size is checked before it is read."""
        try:
            response = self._client.get_object(Bucket=pointer.bucket, Key=pointer.key)
        except ClientError as exc:
            code = _code(exc)
            if code in _MISSING:
                raise ClaimCheckError(
                    "claim-check-missing", f"{pointer} does not exist ({code})", permanent=True
                ) from exc
            if code in _DENIED:
                raise ClaimCheckError(
                    "claim-check-denied", f"{pointer} cannot be read ({code})", permanent=True
                ) from exc
            raise ClaimCheckError("claim-check-unreadable", f"{pointer}: S3 error {code}", permanent=False) from exc
        except BotoCoreError as exc:
            raise ClaimCheckError(
                "claim-check-unreadable", f"{pointer}: S3 unreachable ({type(exc).__name__})", permanent=False
            ) from exc
        stream = response["Body"]
        try:
            size = int(response.get("ContentLength", 0))
            if size > max_bytes:
                raise ClaimCheckError(
                    "oversized", f"{pointer} holds {size} bytes, limit is {max_bytes}", permanent=True
                )
            body: bytes = stream.read(max_bytes + 1)
        except (BotoCoreError, OSError) as exc:
            raise ClaimCheckError(
                "claim-check-unreadable", f"{pointer}: read failed ({type(exc).__name__})", permanent=False
            ) from exc
        finally:
            stream.close()
        if len(body) > max_bytes:
            raise ClaimCheckError("oversized", f"{pointer} holds more than {max_bytes} bytes", permanent=True)
        return body

    def delete(self, pointers: Sequence[Pointer]) -> None:
        """``DeleteObjects`` per bucket, 1,000 keys a call; every call is tried before a failure is raised."""
        by_bucket: dict[str, list[str]] = defaultdict(list)
        for pointer in pointers:
            by_bucket[pointer.bucket].append(pointer.key)
        failures: list[str] = []
        for bucket, keys in by_bucket.items():
            for start in range(0, len(keys), _DELETE_BATCH):
                chunk = keys[start : start + _DELETE_BATCH]
                try:
                    response = self._client.delete_objects(
                        Bucket=bucket, Delete={"Objects": [{"Key": key} for key in chunk], "Quiet": True}
                    )
                except ClientError as exc:
                    failures.append(f"{len(chunk)} in {bucket!r} ({_code(exc)})")
                    continue
                except BotoCoreError as exc:
                    failures.append(f"{len(chunk)} in {bucket!r} ({type(exc).__name__})")
                    continue
                errors = response.get("Errors", [])
                if errors:
                    failures.append(f"{len(errors)} in {bucket!r} ({errors[0].get('Code', '?')})")
        if failures:
            raise ClaimCheckError(
                "claim-check-undeleted", f"objects not deleted: {'; '.join(failures)}", permanent=False
            )
