"""``manage.py eventbus_topology plan|apply|check [--json] [--prune] [-A app]``: ``eventbus topology`` for the
project's Celery app, with the same output and exit status (0 done, 1 drift on ``check``, 2 error)."""

from __future__ import annotations

import io
import sys
from types import ModuleType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from eventbus.errors import ConfigurationError


class Command(BaseCommand):
    """Delegates to :func:`eventbus.cli_topology.run_topology`; the app is the project's unless ``-A`` names one."""

    help = (
        "Compare (plan, check) and make (apply) the SNS/SQS topology the project's Celery app implies with what is "
        "deployed. Exit status: 0 done (check: no drift), 1 drift (check), 2 error."
    )
    # the topology command reads AWS, not the database: no migrations are needed to run it
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        """``plan|apply|check``, ``-A/--app``, ``--json``, ``--prune``."""
        parser.add_argument("action", choices=["plan", "apply", "check"], help="what to do, as eventbus topology")
        parser.add_argument(
            "-A",
            "--app",
            help="the Celery app, as for celery -A (default: the project's, imported by the project package)",
        )
        parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
        parser.add_argument(
            "--prune", action="store_true", help="plan/apply: also unsubscribe from topics the code no longer uses"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Run ``eventbus topology``; a non-zero status leaves as ``SystemExit`` with that status."""
        from eventbus.cli_topology import EXIT_OK, run_topology

        action = options["action"]
        if options["prune"] and action == "check":
            raise CommandError("--prune applies to plan and apply, not to check")
        argv = [action, "-A", options["app"] or self._project_app()]
        argv += ["--json"] if options["json"] else []
        argv += ["--prune"] if options["prune"] else []
        out, err = io.StringIO(), io.StringIO()
        status = run_topology(argv, stdout=out, stderr=err)
        self.stdout.write(out.getvalue(), ending="")
        self.stderr.write(err.getvalue(), ending="")
        if status != EXIT_OK:
            raise SystemExit(status)

    def _project_app(self) -> str:
        """A ``celery -A`` spec for the project's Celery app: a module attribute holding it (``proj:app``)."""
        from eventbus.contrib.django.checks import find_celery_app

        try:
            app, reason = find_celery_app()
        except ConfigurationError as exc:
            raise CommandError(str(exc), returncode=2) from None
        if app is None:
            raise CommandError(f"{reason}; or name the app with -A proj.celery:app", returncode=2)
        specs = sorted(
            f"{name}:{attribute}"
            for name, module in list(sys.modules.items())
            for attribute in ("app", "celery")
            # vars(), not getattr(): a module's __getattr__ may warn or import
            if isinstance(module, ModuleType) and vars(module).get(attribute) is app
        )
        if not specs:
            raise CommandError(f"the Celery app {app.main!r} is no module's attribute: name it with -A", returncode=2)
        return min(specs, key=len)
