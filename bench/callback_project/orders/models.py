"""The entity the tasks load and update."""

from __future__ import annotations

from uuid import uuid4

from django.db import models


class Order(models.Model):
    """An order; the tasks set ``status`` from ``new`` to ``shipped``."""

    id: models.UUIDField[object, object] = models.UUIDField(primary_key=True, default=uuid4)
    status: models.CharField[str, str] = models.CharField(max_length=16, default="new")

    class Meta:
        app_label = "orders"
