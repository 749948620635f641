"""eventbus_dedup and eventbus_outbox."""

from typing import ClassVar

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies: ClassVar[list[tuple[str, str]]] = []

    operations = [
        migrations.CreateModel(
            name="DedupRecord",
            fields=[
                ("key", models.CharField(max_length=255, primary_key=True, serialize=False)),
                ("owner", models.CharField(max_length=255)),
                ("state", models.CharField(max_length=16)),
                ("expires_at", models.FloatField(db_index=True)),
            ],
            options={"db_table": "eventbus_dedup"},
        ),
        migrations.CreateModel(
            name="OutboxMessage",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("message_id", models.CharField(max_length=36, unique=True)),
                ("event_name", models.CharField(max_length=255)),
                ("body", models.TextField()),
                ("created_at", models.FloatField()),
                ("attempts", models.IntegerField(default=0)),
                ("claim_token", models.CharField(blank=True, max_length=36, null=True)),
                ("claimed_until", models.FloatField(db_index=True, default=0.0)),
            ],
            options={"db_table": "eventbus_outbox"},
        ),
    ]
