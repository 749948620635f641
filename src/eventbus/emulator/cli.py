"""``eventbus emulator``: run the embedded SNS/SQS emulator in the foreground until interrupted.

With ``-A app`` it provisions the app's topology (:func:`eventbus.celery.topology.topology_for`, through the same
:class:`~eventbus.adapters.aws.AwsTopologyStore` and plan as ``eventbus topology apply``); without it, the topic and
queue of the ``EVENTBUS_*`` settings (by default ``local_sns`` and ``local__service__queue``: the queue a worker with
the default settings consumes), or those given with ``--topic``/``--queue`` (the seed's ``--queue queue_name``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import Any

__all__ = ["run_emulator"]


def run_emulator(argv: list[str] | None = None) -> int:
    """Start the emulator, provision the app's topology (``-A``) or the seed's topic and queue, serve until
    SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="eventbus emulator", description=run_emulator.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    parser.add_argument("--region", default="eu-west-2")
    parser.add_argument("--provision", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "-A", "--app", help="provision this Celery app's topology (as eventbus topology apply -A does) instead"
    )
    parser.add_argument("--topic", help="topic to create (default: EVENTBUS_TOPIC, local_sns; not with -A)")
    parser.add_argument(
        "--queue",
        action="append",
        dest="queues",
        help="queue to create and subscribe (repeatable; default: EVENTBUS_QUEUE_NAME; not with -A)",
    )
    args = parser.parse_args(argv)
    if args.app and (args.topic or args.queues):
        parser.error("-A takes the topic and queue from the app's settings (EVENTBUS_TOPIC, EVENTBUS_QUEUE_NAME)")

    from pydantic import ValidationError

    from eventbus.emulator.server import EmulatorServer
    from eventbus.errors import EventBusError

    server = EmulatorServer(host=args.host, port=args.port, region=args.region).start()
    print(f"SNS/SQS emulator on {server.endpoint_url} (region {args.region}, account {server.account_id})", flush=True)
    if args.provision:
        try:
            if args.app:
                _provision_app(server, args.app)
            else:
                from eventbus.container import get_container

                settings = get_container().settings()
                topic, queues = args.topic or settings.topic, args.queues or [settings.queue_name]
                _provision_seed(server, topic, queues, settings.fifo)
        except (EventBusError, ValidationError) as exc:
            # the server thread would keep the process alive: stop it before reporting
            server.stop()
            code = exc.code if isinstance(exc, EventBusError) else "ConfigurationError"
            print(f"eventbus emulator: {code}: {' '.join(str(exc).split())}", file=sys.stderr)
            return 2
    print("Ctrl-C stops it.", flush=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stop.wait()
    server.stop()
    print("emulator stopped", flush=True)
    return 0


def _provision_seed(server: Any, topic: str, queues: list[str], fifo: bool) -> None:
    from eventbus.adapters.aws import provision

    # EVENTBUS_FIFO: FIFO topic and queues (their names end in .fifo)
    done = provision(server.client("sns"), server.client("sqs"), topic=topic, queues=queues, fifo=fifo)
    print(f"topic  {done.topic_arn}")
    for queue in done.queues.values():
        print(f"queue  {queue.url}  (dead-letter queue {queue.dead_letter_url})")


def _provision_app(server: Any, spec: str) -> None:
    """Provision the topology ``spec``'s app implies, with the settings it runs with, on the emulator."""
    from eventbus.adapters.aws import AwsTopologyStore
    from eventbus.celery.topology import load_app, topology_for
    from eventbus.container import get_container
    from eventbus.core.topology_plan import plan

    app = load_app(spec)
    topology = topology_for(app, get_container().settings())
    for warning in topology.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    # the emulator's own clients: the settings' endpoint may point at this server's future address, or at nothing
    s3 = _s3_client(server) if topology.payload_bucket is not None else None
    store = AwsTopologyStore(server.client("sns"), server.client("sqs"), s3)
    changes = plan(topology, store.read(topology))
    store.apply(topology, changes)
    for change in changes:
        print(f"  {change}")
    names = [s.topic for s in topology.subscriptions]
    print(f"topic  {', '.join(topology.publishes_to)}{' (FIFO)' if topology.queue.fifo else ''}")
    print(
        f"queue  {topology.queue.name}  (dead-letter queue {topology.queue.dead_letter_name}), subscribed to "
        f"{', '.join(names) or 'nothing'}"
    )
    if topology.payload_bucket is not None:
        print(f"bucket {topology.payload_bucket.name}  (claim-checked events)")


def _s3_client(server: Any) -> Any:
    """An S3 client on the emulator (moto serves S3 on the same endpoint), with path-style addresses: the emulator
    has no per-bucket host names."""
    from botocore.config import Config

    from eventbus.adapters.aws.clients import boto_client

    return boto_client(
        "s3",
        region=server.region,
        endpoint_url=server.endpoint_url,
        access_key_id="test",
        secret_access_key="test",
        config=Config(s3={"addressing_style": "path"}),
    )
