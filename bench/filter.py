"""Filter-policy benchmark (issue 12): what a service pays for the events of a shared topic it does not handle.

    python -m bench.filter --endpoint http://127.0.0.1:4567 --n 2000

A topic carries 10 event types in equal shares; the service's queue is subscribed to it and its worker
(``bench.bench_app``: prefork -c 2, ``configure()``'s defaults) handles one of them, ``benchEvent``. Two scenarios in
one run, each on a fresh topic and queue: ``no-filter`` (every event reaches the queue; the worker receives, parses,
drops and deletes nine in ten) and ``filter`` (the subscription's MessageBody filter policy
``{"metadata": {"eventName": ["benchEvent"]}}``: SNS delivers only those). Each publishes N events through SNS
(``SnsPublisher.publish_batch``: PublishBatch), waits until SNS has delivered them to the queue, starts the worker
(``bench.consume.run_worker``) and stops it once the handled count (Redis) is reached and the queue is empty. Reported:
SQS requests the worker's main process made (bench_app's counting) per published event, the worker's CPU seconds per
1,000 published events, its "dropped message" log lines, handled events, and the ratio of SQS calls per published
event without and with the filter (the issue's target: at least 8x fewer with it, and no "dropped" lines). Prints a
table and writes JSON under ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis

from bench.consume import ROOT, clients, left_in, run_worker
from eventbus.adapters.aws import SnsPublisher
from eventbus.core.envelope import Envelope, Metadata

#: The event the worker handles (``bench_app.bench_event``), then the nine it does not.
HANDLED = "benchEvent"
EVENT_NAMES = [HANDLED, *(f"benchOther{k}" for k in range(1, 10))]
FILTER_POLICY = {"metadata": {"eventName": [HANDLED]}}


@dataclass
class Row:
    scenario: str
    published: int
    delivered: int
    handled: int
    dropped_lines: int
    dead_letter_lines: int
    sqs_calls: int
    calls_per_published: float
    cpu_seconds_per_1000_published: float
    left_in_queue: int
    calls: dict[str, int]


def events(n: int) -> list[Envelope]:
    """N events, the 10 types in turn (equal shares)."""
    return [
        Envelope(
            metadata=Metadata(event_name=EVENT_NAMES[i % 10], publisher_name="bench", entity_id=str(i)),
            payload={"i": i},
        )
        for i in range(n)
    ]


def topology(endpoint: str, filtered: bool) -> tuple[str, str, str]:
    """A fresh topic, and a queue subscribed to it (without raw delivery, eventbus's default): name, URL, topic ARN."""
    sqs, sns = clients(endpoint)
    name = f"bench-filter-{uuid.uuid4().hex[:8]}"
    topic_arn = sns.create_topic(Name=f"{name}-topic")["TopicArn"]
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    attributes = {"FilterPolicyScope": "MessageBody", "FilterPolicy": json.dumps(FILTER_POLICY)} if filtered else {}
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes=attributes)
    return name, url, topic_arn


def wait_for_delivery(sqs: Any, url: str, expected: int, timeout: float = 120) -> int:
    """Wait until SNS has put ``expected`` messages on the queue, then a second more; return how many it holds."""
    deadline = time.monotonic() + timeout
    while left_in(sqs, url) < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {left_in(sqs, url)} of {expected} messages reached the queue")
        time.sleep(0.1)
    time.sleep(1.0)  # anything the filter let through by mistake arrives too
    return left_in(sqs, url)


class Drained(threading.Thread):
    """Adds one to the worker's counter once it has reached ``handled`` and the queue is empty.

    ``run_worker`` stops the worker when the counter reaches the count it is given: given ``handled + 1``, it waits for
    both. The extra one is taken off what it reports.
    """

    def __init__(self, endpoint: str, url: str, counter: str, handled: int) -> None:
        super().__init__(daemon=True)
        self.sqs, _ = clients(endpoint)
        self.url, self.counter, self.handled = url, counter, handled
        self.stop = threading.Event()

    def run(self) -> None:
        r = redis.Redis.from_url(os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0"))
        while not self.stop.wait(0.1):
            if int(r.get(self.counter) or 0) >= self.handled and left_in(self.sqs, self.url) == 0:
                r.incr(self.counter)
                return


def scenario(endpoint: str, n: int, filtered: bool) -> Row:
    sqs, sns = clients(endpoint)
    name, url, topic_arn = topology(endpoint, filtered)
    published = events(n)
    SnsPublisher(sns, topic_arn=topic_arn).publish_batch(published)
    handled = sum(1 for event in published if event.event_name == HANDLED)
    delivered = wait_for_delivery(sqs, url, handled if filtered else n)
    counter = f"bench:{name}"
    log = Path(tempfile.mkstemp(suffix=".log")[1])
    drained = Drained(endpoint, url, counter, handled)
    drained.start()
    try:
        result = run_worker(endpoint, name, handled + 1, counter, {"BENCH_LOG": str(log)})
    finally:
        drained.stop.set()
    lines = log.read_text().splitlines()
    log.unlink(missing_ok=True)
    cpu = result.cpu_seconds_per_1000 * (handled + 1) / 1000
    return Row(
        scenario="filter" if filtered else "no-filter",
        published=n,
        delivered=delivered,
        handled=handled + result.duplicates,
        dropped_lines=sum("dropped message" in line for line in lines),
        dead_letter_lines=sum("dead-lettering" in line for line in lines),
        sqs_calls=result.sqs_calls,
        calls_per_published=result.sqs_calls / n,
        cpu_seconds_per_1000_published=cpu * 1000 / n,
        left_in_queue=left_in(sqs, url),
        calls=result.calls,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", default="http://127.0.0.1:4567")
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args(argv)
    rows = []
    for filtered in (False, True):
        rows.append(scenario(args.endpoint, args.n, filtered))
        print(f"  {rows[-1].scenario}: {rows[-1].calls_per_published:.3f} SQS calls per published event", flush=True)
    print(f"\nN={args.n} published, 10 event types in equal shares, 1 handled; endpoint {args.endpoint}, prefork -c 2")
    head = f"{'published':>9} {'in queue':>8} {'handled':>7} {'dropped':>7} {'DLQ':>4} {'SQS calls':>9}"
    head += f" {'calls/published':>15} {'CPU s/1000 pub':>14} {'left':>5}"
    print(f"{'scenario':<10} {head}")
    for r in rows:
        cols = f"{r.published:9d} {r.delivered:8d} {r.handled:7d} {r.dropped_lines:7d} {r.dead_letter_lines:4d}"
        cols += f" {r.sqs_calls:9d} {r.calls_per_published:15.3f} {r.cpu_seconds_per_1000_published:14.2f}"
        print(f"{r.scenario:<10} {cols} {r.left_in_queue:5d}")
    without, with_filter = rows
    ratio = without.calls_per_published / max(with_filter.calls_per_published, 1e-9)
    cpu_ratio = without.cpu_seconds_per_1000_published / max(with_filter.cpu_seconds_per_1000_published, 1e-9)
    print(f"\nSQS calls per published event, no-filter / filter: {ratio:.1f}x (target >= 8x)")
    print(f"worker CPU per published event, no-filter / filter: {cpu_ratio:.1f}x")
    print(f"'dropped' lines with the filter: {with_filter.dropped_lines} (target 0)")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"filter-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"rows": [asdict(r) for r in rows], "calls_ratio": ratio}, indent=2))
    print(f"\nwritten {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
