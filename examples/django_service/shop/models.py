from uuid import uuid4

from django.db import models


class Parcel(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid4)
    weight = models.IntegerField()

    class Meta:
        app_label = "shop"

    def dispatch(self) -> None:
        if self.weight > 30:
            raise ValueError("too heavy for the courier")
