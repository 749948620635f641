"""``eventbus dlq peek|redrive QUEUE``: read a queue's dead letters decoded and masked, and send chosen ones back.

``QUEUE`` is the source queue (its dead-letter queue is the one its redrive policy names, else ``QUEUE__dlq``) or the
dead-letter queue itself. ``peek`` never consumes: it receives with a short visibility timeout (the messages are
invisible to others meanwhile) and puts every message back (visibility 0) as soon as it has read the queue.
``redrive`` sends each selected message back (body unchanged, attributes kept, ``eventbus-reason`` kept as
``eventbus-redriven-reason``, FIFO group and deduplication ids kept) and deletes it from the dead-letter queue only
after the send succeeded, recording each step in a journal file so an interrupted run can be re-run without losing
or duplicating a message (docs/dead-letters.md).

Exit status: 0 done, 1 nothing matched (empty queue, or no message passed the filters), 2 bad input or an error
(one line on stderr, nothing moved by the failing step), 3 done but some messages were left for a decision (an
interrupted send whose outcome is unknown), 130 interrupted (Ctrl-C: the message in flight is finished first).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO

from eventbus.core.dead_letters import LetterFilter, LetterView, describe, render
from eventbus.errors import EventBusError

__all__ = ["EXIT_ATTENTION", "EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_NOTHING", "EXIT_OK", "RedriveJournal", "run_dlq"]

EXIT_OK: Final = 0
EXIT_NOTHING: Final = 1
EXIT_ERROR: Final = 2
EXIT_ATTENTION: Final = 3
EXIT_INTERRUPTED: Final = 130
#: Receives in a row that bring nothing new before a scan counts the queue as read.
_STALE_RECEIVES: Final = 3


class RedriveJournal:
    """What a redrive did to each dead letter, appended and synced before the next step: ``sending ID``, ``sent ID
    NEW_ID``, ``deleted ID`` or ``unsent ID``. A re-run deletes a ``sent`` letter without sending it again, and keeps
    a ``sending`` one (its send may or may not have arrived) unless told to resend it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.state: dict[str, str] = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                parts = line.split()
                if len(parts) >= 2:
                    self.state[parts[1]] = parts[0]
        self._file: TextIO | None = None

    def pending(self, step: str) -> list[str]:
        """The letters whose last recorded step is ``step``."""
        return [message_id for message_id, last in self.state.items() if last == step]

    def record(self, step: str, message_id: str, detail: str = "") -> None:
        """Append one step and sync it to disk before returning."""
        if self._file is None:
            self._file = self.path.open("a", encoding="utf-8")
        self._file.write(f"{step} {message_id} {detail}".rstrip() + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.state[message_id] = step

    def close(self, forget: Sequence[str] = ()) -> None:
        """Keep only the unfinished entries (minus ``forget``); remove the file when none is left."""
        if self._file is not None:
            self._file.close()
            self._file = None
        for message_id in forget:
            self.state.pop(message_id, None)
        unfinished = {k: v for k, v in self.state.items() if v in ("sending", "sent")}
        if not unfinished:
            self.path.unlink(missing_ok=True)
            return
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text("".join(f"{step} {key}\n" for key, step in unfinished.items()), encoding="utf-8")
        os.replace(temporary, self.path)


def build_parser() -> argparse.ArgumentParser:
    """The ``eventbus dlq`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="eventbus dlq",
        description="Peek at or redrive a queue's dead letters (decoded; secrets and personal data masked).",
        epilog="exit status: 0 done, 1 nothing matched, 2 error, 3 left for a decision, 130 interrupted",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{peek,redrive}")
    peek = commands.add_parser("peek", help="show dead letters without consuming them")
    redrive = commands.add_parser("redrive", help="send dead letters back to their source queue")
    for sub in (peek, redrive):
        sub.add_argument("queue", metavar="QUEUE", help="the source queue (or its dead-letter queue, QUEUE__dlq)")
        sub.add_argument("--event", action="append", default=[], help="only this event name (repeatable)")
        sub.add_argument("--entity", action="append", default=[], help="only this entity id (repeatable)")
        sub.add_argument(
            "--reason", action="append", default=[], help="only reasons starting so; 'none': moved by SQS (repeatable)"
        )
        sub.add_argument("--limit", type=_positive, default=None, help="at most this many messages")
        sub.add_argument("--json", action="store_true", help="one JSON object per line on stdout")
        sub.add_argument(
            "--visibility", type=_positive, default=30, help="seconds a read message stays hidden at most (30)"
        )
    redrive.add_argument("--to", metavar="QUEUE", help="send to this queue (default: the one the DLQ belongs to)")
    redrive.add_argument("--dry-run", action="store_true", help="list what would move; move nothing")
    redrive.add_argument("--journal", type=Path, help="the journal file (default ./.eventbus-redrive-<DLQ>.journal)")
    redrive.add_argument("--progress-every", type=_positive, default=100, help="progress on stderr every N (100)")
    redrive.add_argument("--drop-reason", action="store_true", help="do not keep eventbus-reason on the message")
    redrive.add_argument(
        "--resend-uncertain", action="store_true", help="resend letters an interrupted run may have sent already"
    )
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def run_dlq(argv: list[str], *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run ``eventbus dlq`` with ``argv``; returns the exit status."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse printed its one line already
        return EXIT_OK if exc.code == 0 else EXIT_ERROR
    prefix = f"eventbus dlq {args.command}"
    try:
        from eventbus.adapters.aws import sqs_client
        from eventbus.adapters.aws.dead_letters import DeadLetterQueues
        from eventbus.container import get_container

        settings = get_container().settings()
        queues = DeadLetterQueues(sqs_client(settings))
        resolved = queues.resolve(args.queue)
        print(f"{prefix}: {resolved.note}", file=err)
        letters = LetterFilter.of(args.event, args.entity, args.reason)
        if args.command == "peek":
            return _peek(queues, resolved.dead_letter_url, letters, args, out, err, settings.max_message_bytes)
        return _Redrive(queues, resolved, letters, args, out, err, settings.max_message_bytes).run()
    except EventBusError as exc:
        print(f"{prefix}: {exc.code}: {' '.join(str(exc).split())}", file=err)
        return EXIT_ERROR


def _scan(queues: Any, url: str, visibility: int, held: dict[str, str]) -> Iterator[Any]:
    """Every message of the queue once (as far as SQS shows them), each with whether it is its first receive.

    Every message received is recorded in ``held`` (message id: latest receipt handle) before any is yielded, so a
    caller that stops early still puts back the rest of the batch; a caller that deletes one removes it.
    """
    seen: set[str] = set()
    stale = 0
    while stale < _STALE_RECEIVES:
        batch = queues.receive(url, visibility)
        if not batch:
            return
        fresh = False
        held.update((received.letter.message_id, received.receipt_handle) for received in batch)
        for received in batch:
            first = received.letter.message_id not in seen
            seen.add(received.letter.message_id)
            fresh = fresh or first
            yield received, first
        stale = 0 if fresh else stale + 1


def _emit(view: LetterView, as_json: bool, out: TextIO, note: str = "") -> None:
    if as_json:
        document = view.to_json()
        if note:
            document["action"] = note
        print(json.dumps(document, ensure_ascii=False, default=str, sort_keys=True), file=out)
    else:
        print(render(view) + (f"\n  {note}" if note else ""), file=out)
    out.flush()


def _peek(queues: Any, url: str, letters: LetterFilter, args: Any, out: TextIO, err: TextIO, max_bytes: int) -> int:
    print(
        f"eventbus dlq peek: about {queues.approximate_count(url)} messages; each is hidden from other readers for up "
        f"to {args.visibility}s while peek reads the queue, then put back (nothing is deleted)",
        file=err,
    )
    held: dict[str, str] = {}
    shown = 0
    limit = args.limit if args.limit is not None else 50
    try:
        for received, first in _scan(queues, url, args.visibility, held):
            if not first:
                continue
            view = describe(received.letter, datetime.now(UTC), max_bytes=max_bytes)
            if letters.matches(view):
                _emit(view, args.json, out)
                shown += 1
                if shown >= limit:
                    break
    finally:
        queues.release(url, list(held.values()))
    if not shown:
        what = "the dead-letter queue is empty" if not held else f"no message matched ({letters.describe()})"
        print(f"eventbus dlq peek: {what}", file=err)
        return EXIT_NOTHING
    print(f"eventbus dlq peek: {shown} shown (of {len(held)} read)", file=err)
    return EXIT_OK


@contextmanager
def _deferred_interrupts(flag: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``flag`` instead of raising, so the message in flight is finished (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda *_: flag.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Redrive:
    """One ``eventbus dlq redrive`` run."""

    def __init__(
        self, queues: Any, resolved: Any, letters: LetterFilter, args: Any, out: TextIO, err: TextIO, max_bytes: int
    ) -> None:
        self.queues, self.resolved, self.letters, self.args = queues, resolved, letters, args
        self.out, self.err, self.max_bytes = out, err, max_bytes
        self.dlq = resolved.dead_letter_url
        self.journal = RedriveJournal(args.journal or Path(f".eventbus-redrive-{resolved.dead_letter}.journal"))
        self.held: dict[str, str] = {}
        self.moved = self.matched = self.finished = 0
        self.kept_uncertain: set[str] = set()
        self.resolved_ids: set[str] = set()
        self.interrupted = threading.Event()

    def _target(self) -> tuple[str, str]:
        name = self.args.to or self.resolved.source
        url = self.queues.queue_url(name) if self.args.to else self.resolved.source_url
        if url is None:
            from eventbus.errors import ConfigurationError

            raise ConfigurationError(f"queue {name!r} not found: name where to redrive with --to QUEUE")
        return name, url

    def run(self) -> int:
        """Scan the dead-letter queue once, moving each selected letter; the exit status."""
        target, target_url = self._target()
        say = f"eventbus dlq redrive{' (dry run)' if self.args.dry_run else ''}"
        total = self.queues.approximate_count(self.dlq)
        print(f"{say}: about {total} messages in {self.resolved.dead_letter}; to {target}", file=self.err)
        sent, sending = self.journal.pending("sent"), self.journal.pending("sending")
        if sent or sending:
            print(
                f"{say}: journal {self.journal.path}: {len(sent)} sent by an interrupted run (deleted now, not sent "
                f"again), {len(sending)} whose send was interrupted (kept unless --resend-uncertain)",
                file=self.err,
            )
        try:
            with _deferred_interrupts(self.interrupted):
                for received, first in _scan(self.queues, self.dlq, self.args.visibility, self.held):
                    self._one(received, first, target, target_url)
                    if self.interrupted.is_set() or self._limit_reached():
                        break
        finally:
            self._finish(say)
        if self.interrupted.is_set():
            print(f"{say}: interrupted after {self.moved} moved; run it again to go on", file=self.err)
            return EXIT_INTERRUPTED
        if self.kept_uncertain:
            return EXIT_ATTENTION
        return EXIT_OK if self.matched or self.finished else EXIT_NOTHING

    def _limit_reached(self) -> bool:
        return self.args.limit is not None and self.matched >= self.args.limit

    def _one(self, received: Any, first: bool, target: str, target_url: str) -> None:
        letter = received.letter
        message_id = letter.message_id
        step = self.journal.state.get(message_id)
        if step == "sent" and not self.args.dry_run:
            self.queues.delete(self.dlq, received.receipt_handle)  # sent by an interrupted run: finish it
            self.journal.record("deleted", message_id)
            self.held.pop(message_id, None)
            self.finished += 1
            return
        if step == "sent":  # dry run: the real run deletes it, sends nothing
            return
        if step == "sending" and not self.args.resend_uncertain:
            if first:
                self.kept_uncertain.add(message_id)
            return
        if not first or self.interrupted.is_set():
            return
        view = describe(letter, datetime.now(UTC), max_bytes=self.max_bytes)
        if not self.letters.matches(view):
            return
        self.matched += 1
        if self.args.dry_run:
            _emit(view, self.args.json, self.out, f"would move to {target}")
            return
        self._move(received, view, target, target_url)

    def _move(self, received: Any, view: LetterView, target: str, target_url: str) -> None:
        from eventbus.adapters.aws.dead_letters import refused_by_sqs
        from eventbus.errors import TransportError

        message_id = received.letter.message_id
        self.journal.record("sending", message_id)
        try:
            new_id = self.queues.send_back(
                target_url, received, fifo=target.endswith(".fifo"), keep_reason=not self.args.drop_reason
            )
        except TransportError as exc:
            if refused_by_sqs(exc):  # SQS said no: nothing was sent
                self.journal.record("unsent", message_id)
            raise
        self.journal.record("sent", message_id, new_id)
        self.queues.delete(self.dlq, received.receipt_handle)
        self.journal.record("deleted", message_id)
        self.held.pop(message_id, None)
        self.moved += 1
        _emit(view, self.args.json, self.out, f"moved to {target} as {new_id}")
        if self.moved % self.args.progress_every == 0:
            print(f"eventbus dlq redrive: {self.moved} moved", file=self.err, flush=True)

    def _finish(self, say: str) -> None:
        """Put back what was held; keep in the journal only what is unfinished and may still be in the queue."""
        self.queues.release(self.dlq, list(self.held.values()))
        forget: list[str] = []
        if not self.interrupted.is_set() and not self._limit_reached():
            try:
                nobody_holds = self.queues.invisible_count(self.dlq) == 0
            except EventBusError:
                nobody_holds = False
            seen = set(self.held)
            if nobody_holds:  # the queue was read whole: an unfinished entry not seen is no longer in it
                forget = [m for m in self.journal.pending("sent") + self.journal.pending("sending") if m not in seen]
        self.journal.close(forget)
        if self.kept_uncertain:
            print(
                f"{say}: {len(self.kept_uncertain)} letters kept: an interrupted run was sending them and may have "
                f"sent them; check the target, then re-run with --resend-uncertain or delete them "
                f"({', '.join(sorted(self.kept_uncertain))})",
                file=self.err,
            )
        if self.journal.path.exists():
            print(f"{say}: unfinished entries kept in {self.journal.path}", file=self.err)
        verb = "would move" if self.args.dry_run else "moved"
        count = self.matched if self.args.dry_run else self.moved
        extra = f", {self.finished} finished from an interrupted run" if self.finished else ""
        print(f"{say}: {count} {verb}{extra} ({self.letters.describe()})", file=self.err)
