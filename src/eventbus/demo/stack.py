"""A local stack for demos and examples: the embedded emulator, the seed's topic and queue, a worker subprocess."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

QUEUE = "queue_name"
TOPIC = "local_sns"


def seen(text: str, times: int = 1) -> Callable[[list[str]], bool]:
    """A predicate for :meth:`WorkerOutput.wait_for`: ``text`` appears in at least ``times`` lines."""
    return lambda lines: sum(text in line for line in lines) >= times


class WorkerOutput:
    """Echoes a worker's output with a prefix and remembers it, so a script can wait for lines."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._pump, args=(process,), daemon=True)
        self._thread.start()

    def _pump(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            print(f"  [worker] {line.rstrip()}", flush=True)
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[str]], bool], timeout: float) -> bool:
        """Wait until ``predicate(lines)`` holds; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.lines):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True


class LocalStack:
    """Emulator + provisioning + ``celery -A app_module worker -Q queue_name``; stops everything on exit."""

    def __init__(self, app_module: str, *, port: int = 0, env: Mapping[str, str] | None = None) -> None:
        self.app_module = app_module
        self.port = port
        self.extra_env = dict(env or {})
        self.server: Any = None
        self.worker: subprocess.Popen[str] | None = None
        self.output: WorkerOutput | None = None
        self.topic_arn = ""
        self.dead_letter_url = ""

    def __enter__(self) -> LocalStack:
        from eventbus.adapters.aws import provision
        from eventbus.emulator import EmulatorServer

        print(f"== starting the embedded SNS/SQS emulator on port {self.port or '(any free)'}", flush=True)
        self.server = EmulatorServer(port=self.port).start()
        try:
            endpoint = self.server.endpoint_url
            done = provision(
                self.server.client("sns"),
                self.server.client("sqs"),
                topic=TOPIC,
                queues=(QUEUE,),
                max_receive_count=2,
                visibility_timeout=5,
            )
            queue = done.queues[QUEUE]
            self.topic_arn, self.dead_letter_url = done.topic_arn, queue.dead_letter_url
            print(f"== emulator at {endpoint}; topic {done.topic_arn}", flush=True)
            print(f"== queue {queue.url} (dead-letter queue {queue.dead_letter_url})", flush=True)
            # the worker and this process (which publishes and calls .delay()) share these settings
            os.environ.update(
                EVENTBUS_ENDPOINT_URL=endpoint,
                EVENTBUS_QUEUE_NAME=QUEUE,
                EVENTBUS_TOPIC=TOPIC,
                EVENTBUS_TOPIC_ARN=done.topic_arn,
                **self.extra_env,
            )
            os.environ.setdefault("EVENTBUS_SERVICE", "demo")
            # task messages (.delay(), retries) run from the queue only when signed by the service: one key for both
            os.environ.setdefault("EVENTBUS_SIGNING_KEY", secrets.token_hex(16))
            print(f"== starting: celery -A {self.app_module} worker -Q {QUEUE} -c 2", flush=True)
            self.worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", self.app_module, "worker", "-Q", QUEUE, "-c", "2", "-l", "info"],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=dict(os.environ, PYTHONUNBUFFERED="1"),
                start_new_session=True,
            )
            self.output = WorkerOutput(self.worker)
            if not self.output.wait_for(seen("ready."), 60):
                raise RuntimeError("the worker did not become ready")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def wait_for(self, text: str, times: int = 1, timeout: float = 60) -> bool:
        """Wait until the worker printed ``text`` ``times`` times; report it."""
        assert self.output is not None
        ok = self.output.wait_for(seen(text, times), timeout)
        print(f"== {'ok' if ok else 'MISSING'}: {text}", flush=True)
        return ok

    def aws(self, service: str) -> Any:
        """A boto3 client on the emulator."""
        import boto3

        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.server.endpoint_url,
            region_name="eu-west-2",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        print("== stopping the worker and the emulator", flush=True)
        if self.worker is not None and self.worker.poll() is None:
            os.killpg(self.worker.pid, signal.SIGTERM)  # warm shutdown of the worker and its pool
            try:
                self.worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.worker.pid, signal.SIGKILL)
                self.worker.wait()
        if self.server is not None:
            self.server.stop()
