"""The transactional outbox: events published inside a database transaction leave only if it commits.

:class:`OutboxPublisher` is a :class:`Publisher` that writes envelopes to an outbox table in the caller's open
transaction (the entity repository's, when a callback task runs) instead of sending them. After the commit an
:class:`OutboxRelay` sends them through the real transport and deletes them: at once, from the process that
committed (the fast path), and otherwise from a relay loop that retries with backoff until the transport is back
(:meth:`OutboxRelay.run`). A rolled-back transaction leaves no row, so nothing is ever sent for undone work.

Rows are claimed before they are sent (``claim`` sets a token and a lease), so the fast path and any number of relay
loops never send one row twice; only a relay that dies between the transport's acceptance and the delete leaves a row
to be sent again when its lease ends (at-least-once). That holds only while a pass ends within its lease: a relay is
told the longest its transport's ``publish_batch`` of ``batch_size`` events can take (``longest_publish``: calls x
attempts x timeouts, see :func:`eventbus.adapters.aws.sns.longest_publish_batch`), derives its lease from it (at least
:data:`DEFAULT_CLAIM_LEASE`) and refuses, with :class:`ConfigurationError`, a lease shorter than that plus
:data:`LEASE_MARGIN`.

A row the relay cannot send as it is is kept, never deleted unsent, and set aside for ``30 x max_backoff`` (5 minutes
by default) with an ERROR log naming its outbox id and the reason, its ``attempts`` counted: a body that is not an
envelope, or an event the transport refuses for what it is (a :class:`PublishError` raised from an
:class:`EnvelopeError`, such as an event over SNS's size limit). Retrying those soon would fail the same way; they
wait for an operator (their ``attempts`` grow by one per try), and neither hold up the other rows nor count as an
outage.

Metrics (through the relay's ``telemetry``): each pass's sent events and their lag, from being stored (the envelope's
``publishDate``: the outbox publisher stores an event as it is published) to being sent; and the backlog
(``OutboxStore.pending``), read whenever the metrics are collected.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar, Final

from eventbus.core.envelope import Envelope, decode_message_body
from eventbus.core.telemetry import Telemetry
from eventbus.errors import ConfigurationError, EnvelopeError, OutboxError, PublishError
from eventbus.ports import OutboxItem, OutboxStore, Publisher

logger = logging.getLogger("eventbus.outbox")

#: How long a claim on outbox rows lasts before another relay may take them (seconds), unless a pass can take longer.
DEFAULT_CLAIM_LEASE: Final = 60.0
#: What a lease must last beyond the longest publish (seconds): the claim and the bookkeeping around the publish, and
#: the clocks of the relays' hosts disagreeing.
LEASE_MARGIN: Final = 10.0
#: Longest pause between relay attempts while the transport fails (seconds).
DEFAULT_MAX_BACKOFF: Final = 10.0


@dataclass(frozen=True, slots=True)
class RelayReport:
    """What one relay pass did."""

    sent: int = 0
    failed: int = 0
    error: str = ""


class OutboxRelay:
    """Sends claimed outbox rows through a transport :class:`Publisher` and deletes them.

    One pass claims up to ``batch_size`` rows for ``lease`` seconds and hands them to one ``transport.publish_batch``,
    which takes ``longest_publish`` seconds at worst (0 for a transport that cannot stall). ``lease`` defaults to
    that plus :data:`LEASE_MARGIN`, and to no less than :data:`DEFAULT_CLAIM_LEASE`. ``telemetry`` records what it
    sends and observes the store's backlog (none by default).

    Raises:
        ConfigurationError: ``lease`` is shorter than ``longest_publish`` plus :data:`LEASE_MARGIN`: another relay
            could claim rows while this one still sends them, and send them again.
    """

    def __init__(
        self,
        store: OutboxStore,
        transport: Publisher,
        *,
        batch_size: int = 100,
        lease: float | None = None,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        longest_publish: float = 0.0,
        telemetry: Telemetry | None = None,
    ) -> None:
        longest_pass = longest_publish + LEASE_MARGIN
        if lease is None:
            lease = max(DEFAULT_CLAIM_LEASE, longest_pass)
        elif lease < longest_pass:
            raise ConfigurationError(
                f"outbox claim lease {lease:g}s is shorter than a relay pass may take ({longest_publish:g}s to publish "
                f"{batch_size} event(s) at worst, plus {LEASE_MARGIN:g}s): another relay would send its rows again; "
                "lengthen the lease, or claim fewer rows, or give the transport shorter timeouts or fewer attempts"
            )
        self.store = store
        self.transport = transport
        self.batch_size = batch_size
        self.lease = lease
        self.max_backoff = max_backoff
        self.telemetry = telemetry if telemetry is not None else Telemetry()
        self.telemetry.observe_outbox_backlog(self.backlog)

    def backlog(self) -> int | None:
        """Events waiting in the outbox (claimed or not); None when the store cannot tell now."""
        try:
            return self.store.pending()
        except OutboxError:
            return None

    def _report_sent(self, envelopes: Sequence[Envelope]) -> None:
        now = datetime.now(UTC)
        lags = [(now - envelope.metadata.publish_date).total_seconds() for envelope in envelopes]
        self.telemetry.outbox_relayed(count=len(envelopes), lag_seconds=lags)

    def relay(self, ids: Sequence[str] | None = None) -> RelayReport:
        """Claim and send one batch (only ``ids`` if given); failed rows are released for a later pass, rows that
        cannot be sent as they are set aside.

        Never raises for transport or store failures: they are reported (and logged once per pass).
        """
        try:
            batch = self.store.claim(self.batch_size, self.lease, ids)
        except OutboxError as exc:
            logger.warning("eventbus: outbox claim failed (%s); relaying later", exc)
            return RelayReport(error=str(exc))
        if not batch.items:
            return RelayReport()
        items, envelopes, unreadable = [], [], []
        for item in batch.items:
            try:
                # no size limit here: that is the transport's business
                envelopes.append(decode_message_body(item.body, max_bytes=sys.maxsize))
                items.append(item)
            except EnvelopeError as exc:
                logger.error("eventbus: outbox row %s is not an envelope (%s); kept, not sent", item.id, exc)
                unreadable.append(item)
        if unreadable:
            self._set_aside(batch.token, unreadable)
        if not envelopes:
            return RelayReport(failed=len(unreadable))
        try:
            self.transport.publish_batch(envelopes)
        except PublishError as exc:
            failed_positions = {int(i) for i in exc.failed_ids if i.isdigit()} or set(range(len(items)))
            sent = [item.id for n, item in enumerate(items) if n not in failed_positions]
            failed = [item for n, item in enumerate(items) if n in failed_positions]
            if sent:
                self._report_sent([e for n, e in enumerate(envelopes) if n not in failed_positions])
            if isinstance(exc.__cause__, EnvelopeError):
                # refused for what they are, not for an outage: another try soon would fail the same way
                for item in failed:
                    logger.error(
                        "eventbus: outbox row %s (%s) refused by the transport (%s); kept, not sent",
                        item.id,
                        item.event_name,
                        exc.__cause__,
                    )
                self._settle(batch.token, sent, [])
                self._set_aside(batch.token, failed)
                return RelayReport(sent=len(sent), failed=len(failed) + len(unreadable))
            self._settle(batch.token, sent, failed)
            return RelayReport(sent=len(sent), failed=len(failed) + len(unreadable), error=str(exc))
        self._report_sent(envelopes)
        self._settle(batch.token, [item.id for item in items], [])
        return RelayReport(sent=len(items), failed=len(unreadable))

    def _set_aside(self, token: str, items: list[OutboxItem]) -> None:
        """Keep rows that cannot be sent as they are, hidden far longer than a transport retry."""
        self._settle(token, [], items, retry_in=self.max_backoff * 30)

    def _settle(self, token: str, sent: list[str], failed: list[OutboxItem], retry_in: float | None = None) -> None:
        try:
            if sent:
                self.store.mark_sent(token, sent)
            if failed:
                if retry_in is None:
                    # the relay loop paces retries; a row's own delay grows only while it keeps failing
                    retry_in = min(0.5 * 2 ** min(max(item.attempts for item in failed), 10), self.max_backoff)
                self.store.mark_failed(token, [item.id for item in failed], retry_in)
        except OutboxError as exc:
            # sent rows stay claimed until their lease ends and are then sent again: at-least-once, logged
            logger.error("eventbus: outbox bookkeeping failed (%s); %d sent event(s) may be sent again", exc, len(sent))

    def drain(self) -> RelayReport:
        """Relay passes until nothing is claimable or a pass fails; return the totals."""
        sent = failed = 0
        while True:
            report = self.relay()
            sent, failed = sent + report.sent, failed + report.failed
            if report.error or report.sent == 0:
                return RelayReport(sent=sent, failed=failed, error=report.error)

    def run(self, stop: threading.Event, interval: float = 1.0) -> None:
        """Relay until ``stop`` is set: every ``interval`` seconds while healthy, backing off (doubling, at most
        ``max_backoff``) while the transport or the store fails. Logs the outage once and the recovery once."""
        delay, failing_since = interval, 0.0
        while not stop.is_set():
            report = self.drain()
            if report.error:
                if not failing_since:
                    failing_since = time.monotonic()
                    logger.warning("eventbus: outbox relay cannot send (%s); retrying with backoff", report.error)
                delay = min(delay * 2, self.max_backoff)
            elif report.sent or not failing_since:
                if failing_since:
                    logger.warning(
                        "eventbus: outbox relay sending again after %.1fs; %d event(s) sent",
                        time.monotonic() - failing_since,
                        report.sent,
                    )
                failing_since, delay = 0.0, interval
            # else: nothing was claimable during an outage (the failed rows wait out their retry delay): that is no
            # recovery, so keep the backoff and say nothing until a pass sends or fails
            stop.wait(delay)


class OutboxPublisher(Publisher):
    """A :class:`Publisher` that writes to the outbox in the caller's transaction; sent after commit.

    ``relay`` (optional) is tried right after the commit for the rows just written, so events leave at once when the
    transport is up; rows it cannot send wait for a relay loop. Returns outbox ids, not transport message ids.
    """

    #: Publishing joins the caller's transaction: callers may publish before commit (see ``EntityCallbacks``).
    transactional: ClassVar[bool] = True

    def __init__(self, store: OutboxStore, relay: OutboxRelay | None = None, fast_path_pause: float = 5.0) -> None:
        self.store = store
        self.relay = relay
        #: After a failed fast path, leave events to the relay loop for this long (no task waits on a dead endpoint).
        self.fast_path_pause = fast_path_pause
        self._fast_path_failed_at = -fast_path_pause

    def publish(self, envelope: Envelope) -> str:
        """Store one envelope in the open transaction (or commit it at once outside one)."""
        return self.publish_batch([envelope])[0]

    def publish_batch(self, envelopes: Sequence[Envelope]) -> list[str]:
        """Store envelopes in the open transaction; relay them right after it commits."""
        try:
            ids = self.store.add(envelopes)
        except OutboxError as exc:
            raise PublishError(f"outbox write failed: {exc}") from exc
        if self.relay is not None and ids:
            self.store.on_commit(lambda: self._relay_now(ids))
        return ids

    def _relay_now(self, ids: list[str]) -> None:
        """The fast path: send what this transaction wrote, right after its commit; what fails waits for the loop."""
        assert self.relay is not None
        if time.monotonic() - self._fast_path_failed_at < self.fast_path_pause:
            return
        # one claim takes at most batch_size rows: relay the rest of a large publish too, until a pass fails
        for start in range(0, len(ids), self.relay.batch_size):
            report = self.relay.relay(ids[start : start + self.relay.batch_size])
            if report.error:
                self._fast_path_failed_at = time.monotonic()
                waiting = len(ids) - start - report.sent
                logger.info("eventbus: %d outbox event(s) wait for the relay loop (%s)", waiting, report.error)
                return
