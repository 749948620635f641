"""The shop's order."""

from uuid import uuid4

from django.db import models


class Order(models.Model):
    """An order; ``display_name`` is a property a payload reads."""

    id = models.UUIDField(primary_key=True, default=uuid4)
    reference = models.CharField(max_length=40)
    total_cents = models.IntegerField(default=0)

    class Meta:
        app_label = "shop"

    @property
    def display_name(self) -> str:
        """What a customer sees."""
        return f"Order {self.reference}"
