"""``python -m examples.django_service``: the Django example against the embedded emulator, SQLite in a temp dir."""

import os
import tempfile

from eventbus.demo.stack import LocalStack

with tempfile.TemporaryDirectory() as tmp:
    os.environ["EXAMPLE_SQLITE"] = os.path.join(tmp, "shop.sqlite3")
    os.environ["DJANGO_SETTINGS_MODULE"] = "examples.django_service.settings"
    with LocalStack("examples.django_service.celery_app", env={"EVENTBUS_SERVICE": "shop"}) as stack:
        from django.core.management import call_command

        from examples.django_service import celery_app
        from examples.django_service.shop.models import Parcel
        from examples.django_service.shop.tasks import dispatch_parcel

        celery_app.app.set_current()
        call_command("migrate", verbosity=0)
        dispatch_parcel.delay(parcel_id=str(Parcel.objects.create(weight=2).id))
        dispatch_parcel.delay(parcel_id=str(Parcel.objects.create(weight=99).id))
        ok = stack.wait_for("success callback: parcelDispatched") & stack.wait_for(
            "failure callback: parcelDispatchFailed"
        )
raise SystemExit(0 if ok else 1)
