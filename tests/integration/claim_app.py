"""The Celery app of ``tests/integration/test_claim_check.py``: handlers of large (claim-checked) events that record
what they received (sizes and digests, not the bodies)."""

from __future__ import annotations

import hashlib
from typing import Any

from celery import Celery

from eventbus.celery import configure, subscribe
from eventbus.container import build_container
from eventbus.core.envelope import Metadata
from eventbus.payload import EventPayload
from tests.integration.worker_app import record

app = Celery("claim")
configure(app, build_container())
app.conf.CELERYD_CONSUMER = "eventbus.celery.SQSConsumer"


class LargeDocumentPayload(EventPayload):
    """A document too large for one SNS/SQS message."""

    marker: str
    text: str


@subscribe
def large_document(task: Any, payload: LargeDocumentPayload, metadata: Metadata) -> None:
    record(
        "largeDocument",
        marker=payload.marker,
        size=len(payload.text.encode()),
        digest=hashlib.sha256(payload.text.encode()).hexdigest(),
        entity_id=metadata.entity_id,
        publisher=metadata.publisher_name,
    )


@subscribe
def plain_note(task: Any, payload: dict[str, Any], metadata: Metadata) -> None:
    """Events of other producers (AWS's extended clients), untyped."""
    text = str(payload.get("text", ""))
    record("plainNote", marker=payload.get("marker"), size=len(text.encode()))
