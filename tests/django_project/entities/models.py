"""The seed's ``Entity``, with a primary key and a switch to make ``do_action`` fail."""

from uuid import uuid4

from django.db import models


class ActionRefused(Exception):
    """What ``do_action`` raises when the entity is set to fail."""

    code = "ActionRefused"


class Entity(models.Model):
    """The seed's model (its ``id`` made a primary key so it can be looked up)."""

    id = models.UUIDField(primary_key=True, default=uuid4)
    name = models.CharField(max_length=100, default="")
    #: "ok", "fail" (always), "fail_once" (first attempt only)
    mode = models.CharField(max_length=20, default="ok")
    touched = models.IntegerField(default=0)

    class Meta:
        app_label = "entities"

    def do_action(self, attempt: int = 0) -> None:
        """Touch the row; fail as ``mode`` says."""
        self.touched += 1
        self.save()
        if self.mode == "fail" or (self.mode == "fail_once" and attempt == 0):
            raise ActionRefused("refused: customer jane@example.com has no credit")
