"""Latency benchmark: publish -> handler through SNS -> SQS, an eventbus worker against a raw long-poll loop.

    python -m bench.latency --endpoint http://127.0.0.1:4567 --rates 40,400 --seconds 15 --repeat 2

LocalStack in host mode (``../shared/tools/localstack-host start 4567``) is the intended endpoint. Each run creates a
topic and a queue subscribed to it as eventbus's topology does by default (raw message delivery off: the queue gets
SNS notifications), starts the consumer, waits until it has handled a few warm-up events, then publishes events at a
fixed rate for ``--seconds``: one SNS ``Publish`` per event (``SnsPublisher.publish``), paced by a small thread pool
(``--publish-threads``), each event a valid envelope whose payload carries ``time.time()`` taken just before its
``Publish``. The consumer records ``time.time() - sent`` for each; the run ends when every event has been seen.

Scenarios (``--only``), each on its own topic and queue, alternated within a round so drift hits all of them:

* ``raw-long-poll``: one process, one thread: ``ReceiveMessage(WaitTimeSeconds=20, MaxNumberOfMessages=10)``,
  parse each body, record its latency, ``DeleteMessageBatch``. The baseline.
* ``eventbus-worker``: ``celery -A bench.latency_app worker -c 2 -P prefork`` with ``configure()``'s defaults;
  the ``@subscribe`` handler records the latency.
* experiments, the worker with one change each: ``eventbus-worker-wait20`` (``EVENTBUS_WAIT_TIME_SECONDS=20``),
  ``-prefetch1`` (``worker_prefetch_multiplier=1``), ``-threads`` (``-P threads -c 2``), ``-solo`` (``-P solo``),
  ``-receive-at-once`` (kombu's own scheduling: after a receive that brought messages the next ``ReceiveMessage`` is
  built, signed and sent before the loop's poll hands the new jobs to the pool; eventbus's transport issues it just
  after that poll), ``-fair`` (``-O fair``, which Celery 5.7 maps to the same pool strategy as its default: an A/A
  control of the spread between runs).

Reported per scenario and rate: events, the publish rate achieved, p50, p95, p99 and max latency (ms), and the
eventbus/raw ratios of p50 and p99 (and the p50 difference in ms) against the raw loop of the same run; the issue's
targets are eventbus p50 within 3 ms of the raw loop's and p99 at most 1.25x, at each rate. ``--trace`` also asks SQS
for each message's ``SentTimestamp`` and ``ApproximateFirstReceiveTimestamp`` and splits the latency into stages
(published -> on the queue -> taken by a receive -> the answer in the consumer -> Celery's strategy -> the job written
to the pool -> picked by a pool process -> ``task_prerun`` -> the handler), with the consumer's own share
(``answered->handler``). Prints tables and writes JSON under ``bench/results/``.
"""

from __future__ import annotations

import argparse
import bisect
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench.consume import REGION, ROOT, clients
from eventbus.adapters.aws import SnsPublisher
from eventbus.core.envelope import Envelope, Metadata

# eventbus workers run task messages from the queue only when signed (none are sent here; the worker wants the key)
os.environ.setdefault("EVENTBUS_SIGNING_KEY", "bench-signing-key")

EVENT = "latencyEvent"
WARM_UPS = 3
RAW = "raw-long-poll"
WORKER = "eventbus-worker"
#: Stage boundaries of a traced event, in order: (name, key of the record).
STAGES = [
    ("publish->queued", "sqs_sent"),
    ("queued->dequeued", "sqs_first_receive"),
    ("dequeued->answered", "answer"),
    ("answered->strategy", "strategy"),
    ("strategy->written", "written"),
    ("written->picked", "picked"),
    ("picked->prerun", "prerun"),
    ("->handler", "handled"),
]


#: The consumer's own share: from the receive's answer reaching the process to the handler (raw: to the record).
IN_CONSUMER = "answered->handler"


@dataclass
class Run:
    scenario: str
    rate: float
    round: int
    events: int
    achieved_rate: float
    latencies_ms: list[float]
    stages_ms: dict[str, list[float]] = field(default_factory=dict)
    receives: int = 0
    messages_per_receive: float = 0.0
    #: How long each ``_schedule_queue`` (building, signing, queueing a ReceiveMessage) took, ms.
    schedule_ms: list[float] = field(default_factory=list)
    #: Events whose hand-off to the pool (strategy -> picked) had a ``_schedule_queue`` run inside it.
    handoffs_behind_a_receive: int = 0


@dataclass
class Row:
    scenario: str
    rate: float
    events: int
    achieved_rate: float
    p50: float
    p95: float
    p99: float
    max: float
    p50_minus_raw: float | None = None
    p50_x_raw: float | None = None
    p99_x_raw: float | None = None


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), interpolated between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q / 100
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


class Topology:
    """A fresh topic and a queue subscribed to it, as eventbus subscribes (no raw delivery); deleted by close()."""

    def __init__(self, endpoint: str) -> None:
        self.sqs, self.sns = clients(endpoint)
        self.name = f"bench-latency-{uuid.uuid4().hex[:8]}"
        self.topic_name = f"{self.name}-topic"
        self.topic_arn: str = self.sns.create_topic(Name=self.topic_name)["TopicArn"]
        self.url: str = self.sqs.create_queue(QueueName=self.name, Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.subscription: str = self.sns.subscribe(
            TopicArn=self.topic_arn,
            Protocol="sqs",
            Endpoint=arn,
            Attributes={"RawMessageDelivery": "false"},
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]

    def close(self) -> None:
        self.sns.unsubscribe(SubscriptionArn=self.subscription)
        self.sns.delete_topic(TopicArn=self.topic_arn)
        self.sqs.delete_queue(QueueUrl=self.url)


class Publisher:
    """Publishes events to a topic at a fixed rate from a small pool of threads: one SNS Publish each, or (``batch``
    > 1) ``batch`` consecutive events in one PublishBatch, each stamped with the time just before that call."""

    def __init__(self, endpoint: str, topic_arn: str, threads: int, batch: int = 1) -> None:
        self.publishers = [SnsPublisher(clients(endpoint)[1], topic_arn=topic_arn) for _ in range(threads)]
        self.sent: list[float] = []
        self.batch = batch

    def publish_many(self, first: int, count: int, publisher: SnsPublisher) -> float:
        """Publish events ``first`` .. ``first + count - 1`` in one PublishBatch now; return their send time."""
        sent = time.time()
        envelopes = [
            Envelope(
                metadata=Metadata(event_name=EVENT, publisher_name="bench-latency", entity_id=str(i)),
                payload={"i": i, "sent": sent, "warm": False},
            )
            for i in range(first, first + count)
        ]
        publisher.publish_batch(envelopes)
        return sent

    def publish(self, i: int, *, warm: bool = False, publisher: SnsPublisher | None = None) -> float:
        """Publish event ``i`` now; return its send time."""
        metadata = Metadata(event_name=EVENT, publisher_name="bench-latency", entity_id=str(i))
        sent = time.time()
        payload: dict[str, Any] = {"i": i, "sent": sent, "warm": warm}
        (publisher or self.publishers[0]).publish(Envelope(metadata=metadata, payload=payload))
        return sent

    def paced(self, rate: float, seconds: float) -> float:
        """Publish ``rate * seconds`` events, event i at ``start + i / rate``; return the rate achieved."""
        n = int(rate * seconds)
        sent = [0.0] * n
        lock = threading.Lock()
        counter = iter(range(n))
        start = time.perf_counter() + 0.05

        if self.batch > 1:
            counter = iter(range(0, n, self.batch))

        def work(publisher: SnsPublisher) -> None:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                if self.batch > 1:
                    count = min(self.batch, n - i)
                    sent[i : i + count] = [self.publish_many(i, count, publisher)] * count
                else:
                    sent[i] = self.publish(i, publisher=publisher)

        threads = [threading.Thread(target=work, args=(p,), daemon=True) for p in self.publishers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.sent = sent
        return (n - 1) / (max(sent) - min(sent)) if n > 1 else 0.0


def raw_consume(endpoint: str, url: str, key: str, trace: bool) -> None:
    """The raw loop (its own process): long-poll, parse, record, delete, until terminated."""
    sqs, _ = clients(endpoint)
    r = redis.Redis.from_url(os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0"))
    names = ["SentTimestamp", "ApproximateFirstReceiveTimestamp"]
    extra: dict[str, Any] = {"MessageSystemAttributeNames": names} if trace else {}
    while True:
        messages = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=20, MaxNumberOfMessages=10, **extra).get(
            "Messages", []
        )
        answer = time.time()
        records = []
        for message in messages:
            body = json.loads(message["Body"])
            envelope = json.loads(body["Message"]) if body.get("Type") == "Notification" else body
            payload = envelope["payload"]
            now = time.time()
            record = {"i": payload["i"], "latency": now - payload["sent"], "handled": now, "warm": payload["warm"]}
            if trace:
                attributes = message["Attributes"]
                record.update(
                    answer=answer,
                    sqs_sent=int(attributes["SentTimestamp"]) / 1000,
                    sqs_first_receive=int(attributes["ApproximateFirstReceiveTimestamp"]) / 1000,
                )
            records.append(json.dumps(record))
        if records:
            r.rpush(key, *records)
            entries = [{"Id": str(k), "ReceiptHandle": m["ReceiptHandle"]} for k, m in enumerate(messages)]
            sqs.delete_message_batch(QueueUrl=url, Entries=entries)


class Consumer:
    """A consumer of the run's queue: started, then stopped; what it recorded is in the Redis list ``key``."""

    def __init__(self, scenario: str, endpoint: str, topology: Topology, key: str, trace: bool) -> None:
        self.scenario, self.endpoint, self.topology, self.key, self.trace = scenario, endpoint, topology, key, trace
        self.trace_file = Path(tempfile.mkstemp(suffix=".json")[1]) if trace else None
        self.process: subprocess.Popen[bytes] | None = None
        self.raw: Any = None

    def start(self) -> None:
        if self.scenario == RAW:
            context = multiprocessing.get_context("spawn")
            self.raw = context.Process(
                target=raw_consume, args=(self.endpoint, self.topology.url, self.key, self.trace), daemon=True
            )
            self.raw.start()
            return
        env = dict(
            os.environ,
            EVENTBUS_ENDPOINT_URL=self.endpoint,
            EVENTBUS_QUEUE_NAME=self.topology.name,
            EVENTBUS_TOPIC=self.topology.topic_name,
            EVENTBUS_REGION=REGION,
            # no dead-letter queue in this topology: the start-up checks warn instead of refusing
            EVENTBUS_STARTUP_CHECKS="warn",
            LATENCY_LIST=self.key,
            PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
            **EXPERIMENTS.get(self.scenario, ({}, []))[0],
        )
        if self.trace_file is not None:
            env["LATENCY_TRACE"] = str(self.trace_file)
        cmd = [sys.executable, "-m", "celery", "-A", "bench.latency_app", "worker", "-Q", self.topology.name]
        cmd += EXPERIMENTS.get(self.scenario, ({}, []))[1] or ["-c", "2", "-P", "prefork"]
        cmd += ["--without-heartbeat", "--without-mingle", "--without-gossip"]
        cmd += ["-l", "warning"]
        self.process = subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True)

    def stop(self) -> dict[str, Any]:
        """Stop the consumer; the worker's trace (``LATENCY_TRACE``) if any."""
        if self.raw is not None:
            self.raw.terminate()
            self.raw.join(10)
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.trace_file is None:
            return {}
        text = self.trace_file.read_text() if self.trace_file.exists() else ""
        self.trace_file.unlink(missing_ok=True)
        return dict(json.loads(text)) if text else {}


#: Experiments: the worker's extra environment and the pool options replacing ``-c 2 -P prefork``.
EXPERIMENTS: dict[str, tuple[dict[str, str], list[str]]] = {
    "eventbus-worker-wait20": ({"EVENTBUS_WAIT_TIME_SECONDS": "20"}, []),
    "eventbus-worker-prefetch1": ({"LATENCY_PREFETCH": "1"}, []),
    "eventbus-worker-solo": ({}, ["-P", "solo"]),
    "eventbus-worker-threads": ({}, ["-c", "2", "-P", "threads"]),
    "eventbus-worker-receive-at-once": ({"LATENCY_RECEIVE_AT_ONCE": "1"}, []),
    "eventbus-worker-fair": ({}, ["-c", "2", "-P", "prefork", "-O", "fair"]),
}
SCENARIOS = [RAW, WORKER, *EXPERIMENTS]


def records(r: redis.Redis, key: str) -> list[dict[str, Any]]:
    return [json.loads(item) for item in r.lrange(key, 0, -1)]


def wait_for(r: redis.Redis, key: str, count: int, timeout: float) -> bool:
    """Wait until the list ``key`` holds ``count`` records."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if int(r.llen(key)) >= count:
            return True
        time.sleep(0.05)
    return False


def run(args: argparse.Namespace, scenario: str, rate: float, round_: int) -> Run:
    """One scenario at one rate: fresh topology, consumer, warm-up, paced publishing, every event seen."""
    r = redis.Redis.from_url(os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0"))
    topology = Topology(args.endpoint)
    key = f"latency:{topology.name}"
    r.delete(key)
    consumer = Consumer(scenario, args.endpoint, topology, key, args.trace)
    publisher = Publisher(args.endpoint, topology.topic_arn, args.publish_threads, args.batch)
    trace: dict[str, Any] = {}
    try:
        consumer.start()
        # consuming: warm-up events, one every 0.2 s, until the consumer has handled WARM_UPS of them
        deadline = time.monotonic() + 120
        warm = 0
        while sum(1 for rec in records(r, key) if rec["warm"]) < WARM_UPS:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{scenario}: the consumer handled no warm-up event in 120 s")
            publisher.publish(-1 - warm, warm=True)
            warm += 1
            time.sleep(0.2)
        time.sleep(1.0)  # the last warm-ups' acknowledgements, then a quiet queue
        achieved = publisher.paced(rate, args.seconds)
        n = len(publisher.sent)
        if not wait_for(r, key, n + warm, 60):
            raise RuntimeError(f"{scenario} at {rate:g}/s: not every event was handled in 60 s")
    finally:
        trace = consumer.stop()
        topology.close()
    timed = [rec for rec in records(r, key) if not rec["warm"]]
    r.delete(key)
    result = Run(scenario, rate, round_, len(timed), achieved, [rec["latency"] * 1000 for rec in timed])
    if args.trace:
        stages = trace.get("stages", {})
        for rec in timed:
            rec.update(stages.get(rec.get("id", ""), {}))
        receives = [count for _, count in trace.get("receives", [])]
        result.receives = len(receives)
        result.messages_per_receive = sum(receives) / len(receives) if receives else 0.0
        writes = sorted(float(w) for w in trace.get("writes", []))
        for rec in timed:
            # the first write scheduling after the strategy took the message: the job went into a pipe then
            k = bisect.bisect_left(writes, rec.get("strategy", float("inf")))
            if k < len(writes) and writes[k] <= rec.get("picked", 0.0):
                rec["written"] = writes[k]
        schedules = sorted((float(a), float(b)) for a, b in trace.get("schedules", []))
        result.schedule_ms = [(b - a) * 1000 for a, b in schedules]
        starts = [a for a, _ in schedules]
        for rec in timed:
            # a ReceiveMessage was built and sent between the strategy and the job's write to a pipe
            if "strategy" in rec and "written" in rec:
                k = bisect.bisect_left(starts, rec["strategy"])
                result.handoffs_behind_a_receive += k < len(starts) and starts[k] <= rec["written"]
        result.stages_ms = stage_times(timed)
    return result


def stage_times(timed: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Each event's time in each stage it was traced through, ms (the first boundary is its send time)."""
    stages: dict[str, list[float]] = {}
    for rec in timed:
        previous = rec["handled"] - rec["latency"]
        for name, boundary in STAGES:
            if boundary in rec:
                stages.setdefault(name, []).append((rec[boundary] - previous) * 1000)
                previous = rec[boundary]
        if "answer" in rec:
            stages.setdefault(IN_CONSUMER, []).append((rec["handled"] - rec["answer"]) * 1000)
    return stages


def summarise(runs: list[Run], scenarios: list[str], rates: list[float]) -> list[Row]:
    """Every round of a scenario and rate pooled into one row; ratios against the raw loop's row."""
    rows: list[Row] = []
    for rate in rates:
        raw: Row | None = None
        for scenario in scenarios:
            chosen = [x for x in runs if x.scenario == scenario and x.rate == rate]
            if not chosen:
                continue
            values = [v for x in chosen for v in x.latencies_ms]
            achieved = sum(x.achieved_rate for x in chosen) / len(chosen)
            row = Row(scenario, rate, len(values), achieved, *(percentile(values, q) for q in (50, 95, 99, 100)))
            if scenario == RAW:
                raw = row
            elif raw is not None:
                row.p50_minus_raw = row.p50 - raw.p50
                row.p50_x_raw = row.p50 / raw.p50
                row.p99_x_raw = row.p99 / raw.p99
            rows.append(row)
    return rows


def print_table(rows: list[Row]) -> None:
    head = f"{'rate':>5} {'achieved':>8} {'events':>6} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>8}"
    print(f"{'scenario':<28} {head} {'p50-raw':>8} {'p50 x raw':>9} {'p99 x raw':>9}")
    for row in rows:
        cols = f"{row.rate:5g} {row.achieved_rate:8.1f} {row.events:6d} {row.p50:7.2f} {row.p95:7.2f} {row.p99:7.2f}"
        cols += f" {row.max:8.2f}"
        if row.p50_x_raw is not None and row.p99_x_raw is not None and row.p50_minus_raw is not None:
            cols += f" {row.p50_minus_raw:+8.2f} {row.p50_x_raw:9.2f} {row.p99_x_raw:9.2f}"
        print(f"{row.scenario:<28} {cols}")


def print_rounds(runs: list[Run]) -> None:
    """Each round's p50 and p99 and its ratios to the raw loop of the same round and rate."""
    print(f"\n{'round':>5} {'rate':>5} {'scenario':<28} {'p50':>7} {'p99':>7} {'p50-raw':>8} {'p99 x raw':>9}")
    for x in runs:
        raw = next((y for y in runs if y.scenario == RAW and y.rate == x.rate and y.round == x.round), None)
        p50, p99 = percentile(x.latencies_ms, 50), percentile(x.latencies_ms, 99)
        versus = ""
        if raw is not None and x is not raw:
            versus = f" {p50 - percentile(raw.latencies_ms, 50):+8.2f} {p99 / percentile(raw.latencies_ms, 99):9.2f}"
        print(f"{x.round:5d} {x.rate:5g} {x.scenario:<28} {p50:7.2f} {p99:7.2f}{versus}")


def print_stages(runs: list[Run], scenarios: list[str], rates: list[float]) -> None:
    """Where the time goes: each stage's p50 / p99, ms, every round pooled."""
    names = [name for name, _ in STAGES] + [IN_CONSUMER]
    print(f"\nstages (ms, p50 / p99), rounds pooled{'':<6}", "  ".join(f"{name:>18}" for name in names))
    for rate in rates:
        for scenario in scenarios:
            chosen = [x for x in runs if x.scenario == scenario and x.rate == rate]
            pooled: dict[str, list[float]] = {}
            for x in chosen:
                for name, values in x.stages_ms.items():
                    pooled.setdefault(name, []).extend(values)
            cells = []
            for name in names:
                values = pooled.get(name, [])
                cells.append(
                    f"{percentile(values, 50):8.2f} / {percentile(values, 99):7.2f}" if values else f"{'-':>18}"
                )
            receives = sum(x.receives for x in chosen)
            per = sum(x.messages_per_receive * x.receives for x in chosen) / receives if receives else 0.0
            extra = f"  ({receives} receives, {per:.2f} msg each" if receives else ""
            schedule = [v for x in chosen for v in x.schedule_ms]
            if schedule:
                behind = sum(x.handoffs_behind_a_receive for x in chosen) / max(1, sum(x.events for x in chosen))
                extra += f"; next receive issued in {percentile(schedule, 50):.2f} / {percentile(schedule, 99):.2f} ms"
                extra += f", inside {behind:.0%} of hand-offs"
            extra += ")" if receives else ""
            print(f"{rate:5g} {scenario:<36}", "  ".join(cells) + extra)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", default="http://127.0.0.1:4567")
    parser.add_argument("--rates", default="40,400", help="events per second, comma-separated")
    parser.add_argument("--seconds", type=float, default=15.0, help="publishing time per rate")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; each runs every scenario at every rate")
    parser.add_argument("--only", default=f"{RAW},{WORKER}", help=f"comma-separated, of {', '.join(SCENARIOS)}")
    parser.add_argument("--publish-threads", type=int, default=4)
    parser.add_argument(
        "--batch", type=int, default=1, help="events per PublishBatch (1: one Publish each); for rates SNS can't take"
    )
    parser.add_argument("--trace", action="store_true", help="split each event's latency into stages")
    parser.add_argument("--pin", action="store_true", help="endpoint on CPUs of its own (bench/pinning.py)")
    args = parser.parse_args(argv)
    if args.pin:
        from bench.pinning import pinned

        with pinned(args.endpoint) as placement:
            print(f"pinned: {placement}", flush=True)
            return _measure(parser, args)
    return _measure(parser, args)


def _measure(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    rates = [float(x) for x in args.rates.split(",") if x]
    scenarios = [s for s in args.only.split(",") if s]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    runs: list[Run] = []
    for round_ in range(1, args.repeat + 1):
        for rate in rates:
            for scenario in scenarios:
                x = run(args, scenario, rate, round_)
                runs.append(x)
                p50, p99 = percentile(x.latencies_ms, 50), percentile(x.latencies_ms, 99)
                print(
                    f"  round {round_} {scenario} at {rate:g}/s ({x.achieved_rate:.1f} achieved): {x.events} events, "
                    f"p50 {p50:.2f} ms, p99 {p99:.2f} ms",
                    flush=True,
                )
    rows = summarise(runs, scenarios, rates)
    how = f", PublishBatch of {args.batch}" if args.batch > 1 else ""
    how += ", pinned" if args.pin else ""
    print(f"\n{args.seconds:g} s per rate, {args.repeat} round(s) pooled, endpoint {args.endpoint}{how}, prefork -c 2")
    print("latency publish -> handler, ms; ratios against raw-long-poll at the same rate\n")
    print_table(rows)
    print_rounds(runs)
    if args.trace:
        print_stages(runs, scenarios, rates)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"latency-{time.strftime('%Y%m%d-%H%M%S')}.json"
    document = {"args": vars(args), "rows": [asdict(row) for row in rows], "runs": [asdict(x) for x in runs]}
    path.write_text(json.dumps(document, indent=1))
    print(f"\nwritten {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
