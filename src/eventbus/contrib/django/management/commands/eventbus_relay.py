"""``manage.py eventbus_relay [--once]``: the transactional outbox relay in the foreground, for deployments that relay
outside the Celery worker (the worker runs the same relay in a thread when ``OUTBOX`` is set)."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from eventbus.errors import EventBusError


class Command(BaseCommand):
    """Relay the outbox until SIGTERM or SIGINT; ``--once`` relays what is claimable now and exits."""

    help = (
        "Send the events transactions left in the outbox (EVENTBUS OUTBOX), until SIGTERM/SIGINT. --once relays "
        "until nothing is left to claim, prints how many events it sent, and exits (non-zero if the transport failed)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """``--once``."""
        parser.add_argument(
            "--once",
            action="store_true",
            help="one pass of the relay loop (until nothing is claimable), then exit; for cron jobs and deploy steps",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Build the relay from the process's container and run it."""
        from eventbus.container import get_container

        container = get_container()
        try:
            settings = container.settings()
            if settings.outbox == "off":
                raise CommandError(
                    'the outbox is off, so there is nothing to relay: set EVENTBUS["OUTBOX"] (or EVENTBUS_OUTBOX) to '
                    "the ORM whose transactions publish events (django, sqlalchemy)"
                )
            relay = container.outbox_relay()
        except EventBusError as exc:
            raise CommandError(str(exc)) from None
        try:
            if options["once"]:
                report = relay.drain()
                failed = f", {report.failed} failed" if report.failed else ""
                self.stdout.write(f"eventbus_relay: {report.sent} event(s) sent{failed}")
                if report.error:
                    raise CommandError(f"the outbox relay could not send: {report.error}")
                return
            stop = threading.Event()
            previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
            interval = settings.outbox_relay_interval
            self.stdout.write(f"eventbus_relay: relaying the outbox every {interval:g}s while idle; SIGTERM stops it")
            try:
                relay.run(stop, interval)
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
            self.stdout.write("eventbus_relay: stopped (events not sent yet stay in the outbox)")
        finally:
            container.shutdown_resources()
