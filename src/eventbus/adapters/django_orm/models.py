"""eventbus's tables as Django models. Times are seconds since the epoch (floats), the same in every database."""

from __future__ import annotations

from django.db import models


class DedupRecord(models.Model):
    """One event key: who holds it (``in-progress``) or that it was handled (``done``), until ``expires_at``."""

    key: models.CharField[str, str] = models.CharField(max_length=255, primary_key=True)
    owner: models.CharField[str, str] = models.CharField(max_length=255)
    state: models.CharField[str, str] = models.CharField(max_length=16)
    expires_at: models.FloatField[float, float] = models.FloatField(db_index=True)

    class Meta:
        db_table = "eventbus_dedup"


class OutboxMessage(models.Model):
    """One envelope waiting to be relayed; ``claim_token``/``claimed_until`` mark a relay working on it."""

    id: models.BigAutoField[int, int] = models.BigAutoField(primary_key=True)
    message_id: models.CharField[str, str] = models.CharField(max_length=36, unique=True)
    event_name: models.CharField[str, str] = models.CharField(max_length=255)
    body: models.TextField[str, str] = models.TextField()
    created_at: models.FloatField[float, float] = models.FloatField()
    attempts: models.IntegerField[int, int] = models.IntegerField(default=0)
    claim_token: models.CharField[str | None, str | None] = models.CharField(max_length=36, null=True, blank=True)
    claimed_until: models.FloatField[float, float] = models.FloatField(default=0.0, db_index=True)

    class Meta:
        db_table = "eventbus_outbox"
