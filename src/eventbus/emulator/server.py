"""The embedded SNS/SQS emulator: moto in server mode (real HTTP) with the seed's account and region.

Two things differ from a plain ``moto_server``: the account id is ``000000000000`` (so ARNs
read ``arn:aws:sns:eu-west-2:000000000000:local_sns`` as in the seed), and ``sns subscribe
--protocol sqs`` accepts a queue *URL* as endpoint (the seed's instructions use one; moto and
LocalStack only take an ARN), resolving it to the queue's ARN. And moto's FIFO queues deliver a message group in
order after a consumer's messages become visible again, as SQS does (:mod:`eventbus.emulator.fifo`).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import urllib.error
import urllib.request
from types import TracebackType
from typing import Any, Final
from urllib.parse import urlsplit

from eventbus.emulator.fifo import patch_sqs_fifo

EMULATOR_ACCOUNT_ID: Final = "000000000000"
_ACCOUNT_DIGITS: Final = 12


def sqs_arn_from_url(url: str, region: str, account_id: str) -> str:
    """``http://host:4566/queue/name`` or ``.../000000000000/name`` -> ``arn:aws:sqs:region:account:name``."""
    segments = [s for s in urlsplit(url).path.split("/") if s]
    if not segments:
        raise ValueError(f"no queue name in {url!r}")
    name = segments[-1]
    if len(segments) >= 2 and segments[-2].isdigit() and len(segments[-2]) == _ACCOUNT_DIGITS:
        account_id = segments[-2]
    return f"arn:aws:sqs:{region}:{account_id}:{name}"


def _patch_sns_subscribe() -> None:
    """Let moto's SNS backend take a queue URL as an SQS endpoint (idempotent)."""
    from moto.sns.models import SNSBackend

    original = SNSBackend.subscribe
    if getattr(original, "_eventbus_patched", False):
        return

    def subscribe(self: Any, topic_arn: str, endpoint: str, protocol: str) -> Any:
        if protocol == "sqs" and endpoint.startswith(("http://", "https://")):
            endpoint = sqs_arn_from_url(endpoint, self.region_name, self.account_id)
        return original(self, topic_arn, endpoint, protocol)

    subscribe._eventbus_patched = True  # type: ignore[attr-defined]
    SNSBackend.subscribe = subscribe  # type: ignore[method-assign]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmulatorServer:
    """moto's SNS and SQS over HTTP, in a thread of this process.

    ``port=0`` picks a free port. Use as a context manager, or ``start()`` / ``stop()``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 4566,
        region: str = "eu-west-2",
        account_id: str = EMULATOR_ACCOUNT_ID,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.region = region
        self.account_id = account_id
        self._server: Any = None

    @property
    def endpoint_url(self) -> str:
        """The URL clients use, e.g. ``http://127.0.0.1:4566``."""
        return f"http://{self.host}:{self.port}"

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` (``"sns"``, ``"sqs"``) on this emulator, in its region.

        The emulator accepts any credentials; these clients carry ``test``/``test`` so that none are looked up.
        """
        from eventbus.adapters.aws.clients import boto_client

        return boto_client(
            service,
            region=self.region,
            endpoint_url=self.endpoint_url,
            access_key_id="test",
            secret_access_key="test",
        )

    def start(self, timeout: float = 15.0) -> EmulatorServer:
        """Start serving and wait until the server answers HTTP.

        Raises:
            RuntimeError: the port is taken or the server did not answer in time.
        """
        # moto reads the account per request from the environment, before any header or key.
        os.environ["MOTO_ACCOUNT_ID"] = self.account_id
        os.environ.setdefault("AWS_DEFAULT_REGION", self.region)
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as exc:
            raise ImportError("the embedded emulator needs moto: pip install 'eventbus[emulator]'") from exc

        _patch_sns_subscribe()
        patch_sqs_fifo()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if probe.connect_ex((self.host, self.port)) == 0:
                raise RuntimeError(f"port {self.port} on {self.host} is already in use; stop what runs there first")
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request drowns the demo
        self._server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self._server.start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=2):
                    return self
            except (urllib.error.URLError, OSError) as exc:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the emulator did not answer on {self.endpoint_url}: {exc}") from exc
                time.sleep(0.05)

    def reset(self) -> None:
        """Forget every topic, queue and message."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=5):
            pass

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
