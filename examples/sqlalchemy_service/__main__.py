"""``python -m examples.sqlalchemy_service``: the example against the embedded emulator, SQLite in a temp dir."""

import os
import tempfile

from eventbus.demo.stack import LocalStack

with tempfile.TemporaryDirectory() as tmp:
    env = {"EVENTBUS_DATABASE_URL": f"sqlite:///{os.path.join(tmp, 'billing.sqlite3')}", "EVENTBUS_SERVICE": "billing"}
    with LocalStack("examples.sqlalchemy_service.app", env=env) as stack:
        from examples.sqlalchemy_service import app

        app.pay_invoice.delay(invoice_id=app.add_invoice(120))
        app.pay_invoice.delay(invoice_id=app.add_invoice(5000))
        ok = stack.wait_for("success callback: invoicePaid") & stack.wait_for("failure callback: invoicePaymentFailed")
raise SystemExit(0 if ok else 1)
