"""Publish benchmark: ``EventPublisher.publish`` (one SNS Publish each) vs ``publish_batch`` (PublishBatch of 10).

python -m bench.publish --endpoint http://127.0.0.1:4567 --n 2000
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections import Counter
from typing import Any

import boto3

from eventbus.adapters.aws import SnsPublisher
from eventbus.core.publishing import EventPublisher
from eventbus.payload import EventPayload


class BenchHappenedPayload(EventPayload):
    i: int
    note: str = "benchmark"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", default="http://127.0.0.1:4567")
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args(argv)
    sns: Any = boto3.client(
        "sns", endpoint_url=args.endpoint, region_name="eu-west-2", aws_access_key_id="t", aws_secret_access_key="t"
    )
    calls: Counter[str] = Counter()
    sns.meta.events.register("before-call.sns.*", lambda model, **_: calls.update([model.name]))
    topic = sns.create_topic(Name=f"bench-{uuid.uuid4().hex[:8]}")["TopicArn"]
    publisher = EventPublisher(SnsPublisher(sns, topic_arn=topic), publisher_name="bench")
    payloads = [BenchHappenedPayload(i=i) for i in range(args.n)]
    rows = []
    for name, run in (
        ("single publish", lambda: [publisher.publish(p) for p in payloads]),
        ("batch publish", lambda: publisher.publish_batch(payloads)),
    ):
        calls.clear()
        start = time.perf_counter()
        run()
        seconds = time.perf_counter() - start
        rows.append((name, args.n / seconds, sum(calls.values()) / args.n))
    print(f"N={args.n}, endpoint {args.endpoint}")
    print(f"{'mode':<16} {'events/s':>9} {'x single':>9} {'SNS calls/event':>16}")
    for name, rate, per_event in rows:
        print(f"{name:<16} {rate:9.1f} {rate / rows[0][1]:9.2f} {per_event:16.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
