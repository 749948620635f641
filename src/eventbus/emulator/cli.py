"""``eventbus emulator``: run the embedded SNS/SQS emulator in the foreground until interrupted."""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType


def run_emulator(argv: list[str] | None = None) -> int:
    """Start the emulator, provision the seed's topic and queue, serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="eventbus emulator", description=run_emulator.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    parser.add_argument("--region", default="eu-west-2")
    parser.add_argument("--provision", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--topic", default="local_sns")
    parser.add_argument("--queue", action="append", dest="queues", help="queue to create and subscribe (repeatable)")
    args = parser.parse_args(argv)

    from eventbus.adapters.aws import provision
    from eventbus.emulator.server import EmulatorServer

    server = EmulatorServer(host=args.host, port=args.port, region=args.region).start()
    print(f"SNS/SQS emulator on {server.endpoint_url} (region {args.region}, account {server.account_id})", flush=True)
    if args.provision:
        done = provision(
            server.client("sns"), server.client("sqs"), topic=args.topic, queues=args.queues or ["queue_name"]
        )
        print(f"topic  {done.topic_arn}")
        for queue in done.queues.values():
            print(f"queue  {queue.url}  (dead-letter queue {queue.dead_letter_url})")
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
