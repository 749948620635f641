import uuid

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies: list[tuple[str, str]] = []
    operations = [
        migrations.CreateModel(
            name="Entity",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, primary_key=True, serialize=False)),
                ("name", models.CharField(default="", max_length=100)),
                ("mode", models.CharField(default="ok", max_length=20)),
                ("touched", models.IntegerField(default=0)),
            ],
        ),
    ]
