"""Live test fixtures: the embedded SNS/SQS emulator for a test session, and real Celery workers on it.

For a service's own tests, after ``pip install 'eventbus[sqs,emulator]'``::

    with LiveEmulator() as emulator, LiveWorker("myservice.celery:app", emulator) as worker:
        worker.publish(OrderPlaced(order_id=7), entity_id=7)
        worker.wait_for("order 7 handled")
        confirmed = worker.wait_for_published("orderConfirmed")

:class:`LiveEmulator` runs moto's SNS and SQS in a thread of the test process, on a free port.
:class:`LiveWorker` provisions the app's topology on it (what ``eventbus emulator -A`` does: the queue, its
dead-letter queue and the subscription with the app's filter policy), then runs ``celery -A <app> worker`` as a
subprocess of its own queue (a fresh ``EVENTBUS_QUEUE_NAME`` unless ``env`` sets one), so the worker's start-up checks
pass and tests sharing one emulator never share a queue. On exit it stops the worker and deletes its queues.

The app is imported in subprocesses only (importing an app registers its shared tasks in every Celery app of the
importing process), from the current directory as ``celery -A`` does. Error texts show the end of what a subprocess
wrote, the values of :data:`SECRET_VARIABLES` masked.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

from eventbus.adapters.aws import AwsTopologyStore, SnsPublisher
from eventbus.core.envelope import Envelope, decode_message_body
from eventbus.core.publishing import EventPublisher
from eventbus.emulator.server import EmulatorServer
from eventbus.errors import ConfigurationError, EnvelopeError, EventBusError
from eventbus.payload import EventPayload

__all__ = ["SECRET_VARIABLES", "LiveEmulator", "LiveWorker"]

_CREDENTIALS: Final = ("ACCESS_KEY_ID", "SECRET_ACCESS_KEY")
#: Variables whose values never appear in an error text of this module (masked in the output tails it shows).
SECRET_VARIABLES: Final = (
    *(f"EVENTBUS_{name}" for name in (*_CREDENTIALS, "SIGNING_KEY", "DATABASE_URL", "REDIS_URL")),
    *(f"AWS_{name}" for name in (*_CREDENTIALS, "SESSION_TOKEN")),
)
#: The emulators' well-known dummy credentials: not secrets, and masking them would garble every word containing them.
_DUMMY_CREDENTIALS: Final = frozenset({"test", "testing"})
_MASK: Final = "**********"
_TAIL_CHARS: Final = 3000
_MARKER: Final = "eventbus-live-provisioned "
#: Celery's "celery@host ready." line: the worker consumes from here on.
_READY: Final = re.compile(r"@\S+ ready\.")
_PROVISION_TIMEOUT: Final = 120.0
_PROVISION_CODE: Final = "import sys; from eventbus.testing.live import _provision_main; sys.exit(_provision_main())"


def _failure(what: str, output: str, env: Mapping[str, str]) -> str:
    """An error text: ``what`` went wrong, then the output's end; each secret variable's value in ``env`` masked."""
    text = f"{what}; its output ends with:\n{output[-_TAIL_CHARS:].rstrip() or '(nothing)'}"
    for value in (env.get(name, "") for name in SECRET_VARIABLES):
        if len(value) >= 4 and value not in _DUMMY_CREDENTIALS:
            text = text.replace(value, _MASK)
    return text


@dataclass(frozen=True)
class _Provisioned:
    """What provisioning applied: the topic the app's events go to and the app's queue."""

    topic: str
    queue: str
    dead_letter_queue: str


class LiveEmulator:
    """The embedded SNS/SQS emulator (moto in server mode) for a test session: a context manager, or
    :meth:`start` / :meth:`stop`. ``port`` ``None`` picks a free one."""

    def __init__(self, port: int | None = None, *, region: str = "eu-west-2") -> None:
        self.region = region
        self._server = EmulatorServer(port=port or 0, region=region)

    @property
    def endpoint_url(self) -> str:
        """The emulator's URL, e.g. ``http://127.0.0.1:40123``."""
        return self._server.endpoint_url

    def start(self) -> LiveEmulator:
        """Start serving; return ``self``. Raises ``ImportError`` without moto (``eventbus[emulator]``)."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        self._server.stop()

    def env(self) -> dict[str, str]:
        """The settings that point a process at this emulator."""
        return {"EVENTBUS_ENDPOINT_URL": self.endpoint_url, "EVENTBUS_REGION": self.region}

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` (``"sns"``, ``"sqs"``) on this emulator."""
        return self._server.client(service)

    def provision(self, app_spec: str, env: Mapping[str, str]) -> None:
        """Apply the topology of the Celery app ``app_spec`` (:func:`eventbus.celery.topology.topology_for`) with the
        settings of ``os.environ`` plus :meth:`env` plus ``env``, on this emulator (as ``eventbus emulator -A``); in a
        subprocess, so this process's environment and Celery apps are left alone.

        Raises:
            ConfigurationError: the app does not load, a setting is wrong, or provisioning failed; the text shows
                the end of the subprocess's output.
        """
        self._provision(app_spec, env)

    def _provision(self, app_spec: str, env: Mapping[str, str]) -> _Provisioned:
        full_env = {**os.environ, **self.env(), **env}
        command = [sys.executable, "-c", _PROVISION_CODE, app_spec, self.endpoint_url, self.region]
        try:
            pipes: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}
            done = subprocess.run(command, env=full_env, timeout=_PROVISION_TIMEOUT, check=False, **pipes)
        except subprocess.TimeoutExpired as exc:
            output = (exc.stdout or b"").decode("utf-8", "replace")
            what = f"provisioning {app_spec!r} on the emulator took over {_PROVISION_TIMEOUT:g}s"
            raise ConfigurationError(_failure(what, output, full_env)) from None
        output = done.stdout.decode("utf-8", "replace")
        for line in reversed(output.splitlines()):
            if done.returncode == 0 and line.startswith(_MARKER):
                return _Provisioned(**json.loads(line[len(_MARKER) :]))
        what = (
            f"cannot provision the Celery app {app_spec!r} on the emulator (exit code {done.returncode}): check that "
            f"it imports from the current directory ({os.getcwd()}) and that its settings are valid"
        )
        raise ConfigurationError(_failure(what, output, full_env))

    def __enter__(self) -> LiveEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _provision_main() -> int:
    """In the provisioning subprocess: apply the app's topology with the environment's settings; print what was
    applied as one marked JSON line."""
    from botocore.config import Config
    from pydantic import ValidationError

    from eventbus.adapters.aws import boto_client
    from eventbus.celery.topology import load_app, topology_for
    from eventbus.core.topology_plan import plan
    from eventbus.settings import EventBusSettings

    spec, endpoint, region = sys.argv[1:]
    try:
        app = load_app(spec)
        topology = topology_for(app, EventBusSettings.load())
        keys = {"access_key_id": "test", "secret_access_key": "test"}  # the emulator takes any
        sns, sqs = (boto_client(name, region=region, endpoint_url=endpoint, **keys) for name in ("sns", "sqs"))
        # EVENTBUS_LARGE_PAYLOAD_BUCKET: the bucket too; path-style, as an emulator has no per-bucket host names
        path_style = Config(s3={"addressing_style": "path"}) if endpoint else None
        s3 = boto_client("s3", region=region, endpoint_url=endpoint or None, config=path_style, **keys)
        store = AwsTopologyStore(sns, sqs, s3 if topology.payload_bucket is not None else None)
        store.apply(topology, plan(topology, store.read(topology)))
    except (EventBusError, ValidationError) as exc:
        code = exc.code if isinstance(exc, EventBusError) else "ConfigurationError"
        print(f"{code}: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
        return 2
    done = _Provisioned(topology.publishes_to[0], topology.queue.name, topology.queue.dead_letter_name)
    print(_MARKER + json.dumps(done.__dict__), flush=True)
    return 0


class LiveWorker:
    """A real ``celery worker`` of ``app_spec`` on the emulator, on a queue of its own: a context manager.

    Entering provisions the app's topology, subscribes a raw-delivery spy queue to the topic (:attr:`published`),
    starts ``celery -A app_spec worker -Q <queue> -c <concurrency> -P prefork`` with ``os.environ``, the emulator's
    :meth:`~LiveEmulator.env` and ``env`` (a unique ``EVENTBUS_QUEUE_NAME`` unless ``env`` sets one), and waits for its
    "ready" line. Exiting stops it (SIGTERM, SIGKILL after :attr:`stop_timeout`) and deletes its queue, dead-letter
    queue, subscription and spy.

    Raises (on entering):
        ConfigurationError: the app cannot be provisioned, or its worker exited before it was ready; the text shows
            the end of the output.
        TimeoutError: the worker was not ready within ``ready_timeout`` seconds.
    """

    #: Seconds a stopping worker gets to finish its tasks before it is killed.
    stop_timeout: float = 20.0

    def __init__(
        self,
        app_spec: str,
        emulator: LiveEmulator,
        *,
        env: Mapping[str, str] | None = None,
        concurrency: int = 1,
        ready_timeout: float = 60,
    ) -> None:
        self.app_spec = app_spec
        self.emulator = emulator
        self.concurrency = concurrency
        self.ready_timeout = ready_timeout
        fifo = {**os.environ, **(env or {})}.get("EVENTBUS_FIFO", "").lower() in {"1", "on", "t", "true", "y", "yes"}
        self._env = {"EVENTBUS_QUEUE_NAME": f"eventbus_live_{uuid.uuid4().hex[:12]}" + ".fifo" * fifo, **(env or {})}
        self._full_env: dict[str, str] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._chunks: list[str] = []
        self._changed = threading.Condition()
        self._provisioned: _Provisioned | None = None
        self._spy_url = self._spy_subscription = ""
        self._seen: list[Envelope] = []
        self._publisher: EventPublisher | None = None

    @property
    def queue_name(self) -> str:
        """The queue this worker consumes."""
        return self._env["EVENTBUS_QUEUE_NAME"]

    @property
    def output(self) -> str:
        """What the worker wrote (stdout and stderr) so far."""
        with self._changed:
            return "".join(self._chunks)

    @property
    def published(self) -> list[Envelope]:
        """Every event that reached the topic since the worker started (read from the spy queue on access)."""
        sqs = self.emulator.client("sqs")
        while self._spy_url:
            messages = sqs.receive_message(QueueUrl=self._spy_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                break
            for message in messages:
                with contextlib.suppress(EnvelopeError):  # not an event: another publisher's business
                    self._seen.append(decode_message_body(message["Body"]))
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
            sqs.delete_message_batch(QueueUrl=self._spy_url, Entries=entries)
        return list(self._seen)

    def start(self) -> LiveWorker:
        """Provision, start the worker and wait until it is ready (see the class)."""
        if self._process is not None:
            raise RuntimeError("this LiveWorker is already started")
        try:
            self._provisioned = self.emulator._provision(self.app_spec, self._env)
            # the queue as the settings resolved it (the worker's resolve it the same)
            self._env["EVENTBUS_QUEUE_NAME"] = self._provisioned.queue
            self._subscribe_spy(self._provisioned.topic)
            self._launch(self._provisioned.queue)
            failure = self._await_output(_READY.search, self.ready_timeout)
        except BaseException:
            self.stop()
            raise
        if failure:
            self.stop()
            late = failure == "timeout"
            what = f"was not ready within {self.ready_timeout:g}s" if late else f"{failure} before it was ready"
            error = TimeoutError if late else ConfigurationError
            raise error(_failure(f"the worker of {self.app_spec!r} {what}", self.output, self._full_env))
        return self

    def _subscribe_spy(self, topic: str) -> None:
        sns, sqs = self.emulator.client("sns"), self.emulator.client("sqs")
        fifo = {"FifoTopic": "true", "ContentBasedDeduplication": "false"} if topic.endswith(".fifo") else {}
        topic_arn = sns.create_topic(Name=topic, Attributes=fifo)["TopicArn"]  # FIFO: named with its attributes
        self._spy_url = sqs.create_queue(QueueName=f"eventbus_live_spy_{uuid.uuid4().hex[:12]}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self._spy_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        raw = {"RawMessageDelivery": "true"}
        self._spy_subscription = sns.subscribe(
            TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes=raw, ReturnSubscriptionArn=True
        )["SubscriptionArn"]

    def _launch(self, queue: str) -> None:
        self._full_env = {**os.environ, **self.emulator.env(), **self._env, "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "celery", "-A", self.app_spec, "worker", "-Q", queue]
        command += ["-c", str(self.concurrency), "-P", "prefork", "--without-heartbeat", "--without-mingle"]
        command += ["--without-gossip", "-l", "INFO"]
        self._process = subprocess.Popen(
            command, env=self._full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._reader = threading.Thread(target=self._read, args=(self._process,), name="live-worker", daemon=True)
        self._reader.start()

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        """Drain the worker's output as it comes (a full pipe would block the worker)."""
        assert process.stdout is not None
        for line in iter(process.stdout.readline, b""):
            with self._changed:
                self._chunks.append(line.decode("utf-8", "replace"))
                self._changed.notify_all()

    def _await_output(self, found: Callable[[str], object], timeout: float) -> str:
        """Wait until ``found(output)``; return ``""``, or why it never will (the worker exited, or time ran out)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not found("".join(self._chunks)):
                process = self._process
                if process is None or process.poll() is not None:
                    return f"exited with code {process.returncode if process else None}"
                if time.monotonic() > deadline:
                    return "timeout"
                self._changed.wait(0.2)
        return ""

    def publish(self, payload: EventPayload, *, entity_id: object = None) -> str:
        """Publish ``payload`` to the worker's topic through SNS, as another service would; return SNS's MessageId."""
        if self._provisioned is None:
            raise RuntimeError("the LiveWorker is not started: use it as a context manager, or call start()")
        if self._publisher is None:
            sns = SnsPublisher(self.emulator.client("sns"), topic_name=self._provisioned.topic)
            self._publisher = EventPublisher(sns, publisher_name="eventbus-live-test")
        return self._publisher.publish(payload, entity_id=entity_id)

    def wait_for(self, text: str, timeout: float = 30) -> None:
        """Wait until the worker's output contains ``text``.

        Raises:
            AssertionError: not within ``timeout`` seconds, or the worker exited first; shows the output's end.
        """
        failure = self._await_output(lambda output: text in output, timeout)
        if failure.startswith("exited") and self._reader is not None:
            self._reader.join(2)  # after an exit, the last lines (often the reason) may still be in the pipe
        if failure and text not in self.output:
            why = f"within {timeout:g}s" if failure == "timeout" else f"the worker {failure}"
            what = f"the worker's output does not contain {text!r} ({why})"
            raise AssertionError(_failure(what, self.output, self._full_env))

    def wait_for_published(self, event_name: str, timeout: float = 30) -> Envelope:
        """The first event named ``event_name`` that reached the topic since the worker started, waiting for it.

        Raises:
            AssertionError: none within ``timeout`` seconds; names the events that did arrive.
        """
        deadline = time.monotonic() + timeout
        while True:
            seen = self.published
            for envelope in seen:
                if envelope.event_name == event_name:
                    return envelope
            if time.monotonic() > deadline:
                names = ", ".join(sorted({envelope.event_name for envelope in seen})) or "none"
                raise AssertionError(f"no {event_name!r} event reached the topic within {timeout:g}s (seen: {names})")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the worker (SIGTERM to its process group, SIGKILL after :attr:`stop_timeout`), then delete its queues,
        subscriptions and spy (idempotent)."""
        process, self._process = self._process, None
        try:
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            if self._reader is not None:
                self._reader.join(5)
        finally:
            self._remove_resources()

    def _remove_resources(self) -> None:
        sns, sqs = self.emulator.client("sns"), self.emulator.client("sqs")
        if self._spy_url:
            sns.unsubscribe(SubscriptionArn=self._spy_subscription)
            sqs.delete_queue(QueueUrl=self._spy_url)
            self._spy_url = ""
        provisioned, self._provisioned = self._provisioned, None
        for name in (provisioned.queue, provisioned.dead_letter_queue) if provisioned else ():
            try:
                url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            except sqs.exceptions.QueueDoesNotExist:
                continue
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            for page in sns.get_paginator("list_subscriptions").paginate():
                for subscription in page["Subscriptions"]:
                    if subscription["Endpoint"] == arn:
                        sns.unsubscribe(SubscriptionArn=subscription["SubscriptionArn"])
            sqs.delete_queue(QueueUrl=url)

    def __enter__(self) -> LiveWorker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
