"""Outbox relay benchmark: how fast, how soon, how cheaply and how exactly the outbox relay gets events to SNS.

    python -m bench.relay --endpoint http://127.0.0.1:4567 --n 5000 --rate 200 --seconds 10 --repeat 3

The outbox is the SQLAlchemy store (``SqlAlchemyOutboxStore``) on PostgreSQL (``--database-url``, a database of its
own, created if missing; it needs no Django project). The relays are real eventbus Celery workers
(``bench.relay_support``, ``EVENTBUS_OUTBOX=sqlalchemy``, prefork ``-c 2``): their outbox relay step runs
``OutboxRelay.run`` with the shipped settings (10 rows per pass, 1 s pause after a pass that found nothing) unless
``--batch-size`` / ``--interval`` say otherwise. eventbus has no relay command; that step is how a service relays.

Scenarios, each on a fresh topic with a spy SQS queue subscribed to it (raw message delivery), and an empty outbox:

* ``batch-publish``: the baseline. ``EventPublisher.publish_batch`` of N events straight to SNS from this process
  (PublishBatch of 10, as ``bench/publish.py``'s batch row).
* ``relay-1`` / ``relay-2``: N events are stored in the outbox first, then 1 relay, or 2 relays in separate processes
  at once, are started; events/s from the start of the first PublishBatch to the return of the last.
* ``latency-1`` / ``latency-2``: 1 or 2 relays run; a writer here commits one event per transaction (repository
  ``atomic()``, ``OutboxPublisher`` without the fast path, so the relay loop carries every event) at ``--rate`` per
  second for ``--seconds``. Latency from the writer's commit to the return of the relay's PublishBatch that carried
  the event (SNS accepted it: where the outbox's job ends), and, as a cross-check, to the spy queue's
  ``SentTimestamp`` (SNS's fan-out to SQS added).

Every scenario counts the SNS calls the relay processes made (botocore, per process, totalled in Redis) per event,
the events the relays published twice, and what the spy queue received: distinct events, duplicates, missing.
Relay CPU seconds per 1,000 events are the relay workers' main processes' from the end of their first pass to their
shutdown (start-up excluded; the JSON has the workers' whole CPU too, ``getrusage(RUSAGE_CHILDREN)``). The relays'
profile (time per pass in claim, publish, delete; rows per claim; empty and partial claims; drains, each followed by
the pause) comes from ``bench.relay_support``. Prints two tables and writes JSON under ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import boto3
import redis
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from bench.relay_support import BenchRelayedPayload, event_key
from eventbus.adapters.aws import SnsPublisher
from eventbus.adapters.sqlalchemy import SqlAlchemyEntityRepository
from eventbus.adapters.sqlalchemy.outbox import SqlAlchemyOutboxStore
from eventbus.adapters.sqlalchemy.tables import metadata, outbox
from eventbus.core.outbox import OutboxPublisher
from eventbus.core.publishing import EventPublisher

ROOT = Path(__file__).resolve().parents[1]
REGION = "eu-west-2"
REDIS_URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
# the relay workers refuse unsigned task messages; none are sent here, but they start with a key as a service would
os.environ.setdefault("EVENTBUS_SIGNING_KEY", "bench-signing-key")


@dataclass
class Result:
    """One scenario's figures."""

    scenario: str
    relays: int
    events: int
    seconds: float = 0.0
    per_second: float = 0.0
    sns_calls: dict[str, int] = field(default_factory=dict)
    calls_per_event: float = 0.0
    published_twice: int = 0
    spy_received: int = 0
    spy_distinct: int = 0
    spy_duplicates: int = 0
    spy_missing: int = 0
    left_in_outbox: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)
    spy_latency_ms: dict[str, float] = field(default_factory=dict)
    cpu_seconds_per_1000: float = 0.0
    #: Latency scenarios: the rate the writer achieved (events/s committed), below ``--rate`` when it fell behind.
    written_per_second: float = 0.0
    profile: dict[str, float] = field(default_factory=dict)


@dataclass
class Topic:
    """A fresh topic, its raw-delivery spy queue, and an empty queue for the relay workers to consume."""

    arn: str
    spy_url: str
    worker_queue: str
    worker_url: str


@dataclass
class Filled:
    """What a scenario stored: each event's key and commit time (epoch seconds), and the rate it was written at."""

    committed: dict[str, float]
    rate: float = 0.0


class Bench:
    """The clients, the database and the Redis prefix of one run."""

    def __init__(self, endpoint: str, database_url: str, extra_env: dict[str, str]) -> None:
        kwargs: dict[str, Any] = {
            "endpoint_url": endpoint,
            "region_name": REGION,
            "aws_access_key_id": "test",
            "aws_secret_access_key": "test",
        }
        self.endpoint = endpoint
        self.sqs: Any = boto3.client("sqs", **kwargs)
        self.sns: Any = boto3.client("sns", **kwargs)
        self.database_url = database_url
        self.engine = create_database(database_url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.redis = redis.Redis.from_url(REDIS_URL)
        self.extra_env = extra_env

    @contextmanager
    def topic(self) -> Iterator[Topic]:
        """A fresh topic with its spy queue (raw delivery) and the workers' queue; deleted afterwards."""
        tag = uuid.uuid4().hex[:10]
        arn = self.sns.create_topic(Name=f"bench-relay-{tag}")["TopicArn"]
        spy_url = self.sqs.create_queue(QueueName=f"bench-relay-spy-{tag}")["QueueUrl"]
        spy_arn = self.sqs.get_queue_attributes(QueueUrl=spy_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=spy_arn, Attributes={"RawMessageDelivery": "true"})
        worker_queue = f"bench-relay-worker-{tag}"
        worker_url = self.sqs.create_queue(QueueName=worker_queue)["QueueUrl"]
        with self.engine.begin() as connection:
            connection.execute(sa.text(f"TRUNCATE {outbox.name}"))
        try:
            yield Topic(arn, spy_url, worker_queue, worker_url)
        finally:
            for url in (spy_url, worker_url):
                self.sqs.delete_queue(QueueUrl=url)
            self.sns.delete_topic(TopicArn=arn)

    def left_in_outbox(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.scalar(sa.select(sa.func.count()).select_from(outbox)) or 0)

    @contextmanager
    def relays(self, count: int, topic: Topic, prefix: str) -> Iterator[list[Path]]:
        """``count`` relay workers started at once; yields their stats files (written when they stop)."""
        stats = [Path(tempfile.mkstemp(prefix="bench-relay-", suffix=".json")[1]) for _ in range(count)]
        env = dict(
            os.environ,
            EVENTBUS_ENDPOINT_URL=self.endpoint,
            EVENTBUS_REGION=REGION,
            EVENTBUS_QUEUE_NAME=topic.worker_queue,
            EVENTBUS_TOPIC_ARN=topic.arn,
            EVENTBUS_OUTBOX="sqlalchemy",
            EVENTBUS_DATABASE_URL=self.database_url,
            # a bare queue on purpose (not subscribed, no dead-letter queue): the start-up checks warn
            EVENTBUS_STARTUP_CHECKS="warn",
            BENCH_PREFIX=prefix,
            BENCH_REDIS=REDIS_URL,
            PYTHONPATH=str(ROOT),
            **self.extra_env,
        )
        cmd = [sys.executable, "-m", "celery", "-A", "bench.relay_support", "worker", "-Q", topic.worker_queue]
        cmd += ["-c", "2", "-P", "prefork", "--without-heartbeat", "--without-mingle", "--without-gossip"]
        cmd += ["-l", "warning", "-n", f"relay{{}}-{prefix[-6:]}@%h"]
        workers = []
        try:
            for k, path in enumerate(stats):
                named = [part.replace("{}", str(k)) for part in cmd]
                workers.append(
                    subprocess.Popen(named, env=dict(env, BENCH_STATS=str(path)), cwd=ROOT, start_new_session=True)
                )
            yield stats
        finally:
            for worker in workers:
                if worker.poll() is None:
                    os.killpg(worker.pid, signal.SIGTERM)
            for worker in workers:
                try:
                    worker.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(worker.pid, signal.SIGKILL)
                    worker.wait()

    def drain_spy(self, url: str, expected: int) -> tuple[Counter[str], dict[str, float]]:
        """Receive everything the spy queue got: how often each event key came, and when SQS first got each."""
        seen: Counter[str] = Counter()
        sent_at: dict[str, float] = {}
        empty = 0
        deadline = time.monotonic() + 120
        while empty < (2 if sum(seen.values()) >= expected else 5) and time.monotonic() < deadline:
            messages = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["SentTimestamp"]
            ).get("Messages", [])
            if not messages:
                empty += 1
                continue
            empty = 0
            for message in messages:
                key = event_key(message["Body"])
                seen[key] += 1
                sent_at.setdefault(key, int(message["Attributes"]["SentTimestamp"]) / 1000)
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
            self.sqs.delete_message_batch(QueueUrl=url, Entries=entries)
        return seen, sent_at


def create_database(url: str) -> sa.Engine:
    """The bench's own database (created if missing) with eventbus's tables."""
    server, name = url.rsplit("/", 1)
    admin = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        if not connection.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}):
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    engine = sa.create_engine(url)
    metadata.create_all(engine)
    return engine


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p99 and max of ``values`` (seconds), in milliseconds."""
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"p50": at(0.50), "p99": at(0.99), "max": ordered[-1] * 1000}


def publish_calls(calls: dict[str, int]) -> int:
    """The calls that carry events (the relay workers' start-up checks make a ListSubscriptionsByTopic too)."""
    return calls.get("Publish", 0) + calls.get("PublishBatch", 0)


def wait_until(done: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)


def payloads(scenario: str, n: int) -> list[BenchRelayedPayload]:
    return [BenchRelayedPayload(key=f"{scenario}-{i}") for i in range(n)]


def check_spy(bench: Bench, topic: Topic, result: Result, keys: set[str]) -> dict[str, float]:
    """Fill the spy queue's columns; return when SQS got each event."""
    seen, sent_at = bench.drain_spy(topic.spy_url, len(keys))
    result.spy_received = sum(seen.values())
    result.spy_distinct = len(set(seen) & keys)
    result.spy_duplicates = sum(count - 1 for key, count in seen.items() if key in keys)
    result.spy_missing = len(keys - set(seen))
    return sent_at


def batch_publish(bench: Bench, n: int) -> Result:
    """The baseline: EventPublisher.publish_batch of N events straight to SNS."""
    result = Result("batch-publish", 0, n)
    calls: Counter[str] = Counter()
    with bench.topic() as topic:
        sns: Any = boto3.client(
            "sns", endpoint_url=bench.endpoint, region_name=REGION, aws_access_key_id="t", aws_secret_access_key="t"
        )
        sns.meta.events.register("before-call.sns.*", lambda model, **_: calls.update([model.name]))
        publisher = EventPublisher(SnsPublisher(sns, topic_arn=topic.arn), publisher_name="bench")
        events = payloads("batch", n)
        sns.list_subscriptions_by_topic(TopicArn=topic.arn)  # warm: the relays' processes made their first call
        calls.clear()
        cpu0 = time.process_time()
        start = time.perf_counter()
        publisher.publish_batch(events)
        result.seconds = time.perf_counter() - start
        result.cpu_seconds_per_1000 = (time.process_time() - cpu0) * 1000 / n
        result.per_second = n / result.seconds
        result.sns_calls = dict(calls)
        result.calls_per_event = publish_calls(calls) / n
        check_spy(bench, topic, result, {p.key for p in events})
    return result


def relayed(
    bench: Bench, scenario: str, count: int, n: int, fill: Callable[[Topic, str], Filled], timeout: float
) -> Result:
    """Run ``count`` relays while ``fill`` stores events (before or while they run); gather the figures."""
    result = Result(scenario, count, n)
    prefix = f"bench:relay:{uuid.uuid4().hex[:12]}"
    with bench.topic() as topic:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        filled = Filled({})
        try:
            if scenario.startswith("relay"):
                filled = fill(topic, scenario)  # stored first, then the relays start
            with bench.relays(count, topic, prefix) as stats_files:
                if not filled.committed:
                    wait_until(lambda: int(bench.redis.get(f"{prefix}:ready") or 0) >= count, 120, "relays to start")
                    time.sleep(1.0)  # each relay's first pass (found nothing) is behind it
                    filled = fill(topic, scenario)
                wait_until(lambda: int(bench.redis.get(f"{prefix}:sent") or 0) >= n, timeout, f"{n} events relayed")
                time.sleep(2.0)  # anything published twice shows up meanwhile
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            batches = [json.loads(raw) for raw in bench.redis.lrange(f"{prefix}:batches", 0, -1)]
            raw_calls: dict[Any, Any] = bench.redis.hgetall(f"{prefix}:calls")
            calls = {k.decode(): int(v) for k, v in raw_calls.items()}
        finally:
            bench.redis.delete(*(f"{prefix}:{k}" for k in ("ready", "sent", "batches", "calls")))
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        published: dict[str, float] = {}
        published_count: Counter[str] = Counter()
        for batch in batches:
            for key in batch["keys"]:
                published_count[key] += 1
                published.setdefault(key, batch["t1"])
        result.written_per_second = filled.rate
        committed = filled.committed
        result.published_twice = sum(c - 1 for c in published_count.values())
        result.seconds = max(b["t1"] for b in batches) - min(b["t0"] for b in batches)
        result.per_second = n / result.seconds
        result.sns_calls = calls
        result.calls_per_event = publish_calls(calls) / n
        result.left_in_outbox = bench.left_in_outbox()
        result.profile = profile(stats_files, batches)
        result.profile["cpu_s_with_startup"] = cpu
        result.cpu_seconds_per_1000 = result.profile["relay_cpu_s"] * 1000 / n
        sent_at = check_spy(bench, topic, result, set(committed))
        if scenario.startswith("latency"):
            result.latency_ms = percentiles([published[k] - t for k, t in committed.items() if k in published])
            result.spy_latency_ms = percentiles([sent_at[k] - t for k, t in committed.items() if k in sent_at])
    return result


def profile(stats_files: list[Path], batches: list[dict[str, Any]]) -> dict[str, float]:
    """The relays' profile, summed over the relays: per pass costs, rows per claim, empty claims, pauses."""
    total: Counter[str] = Counter()
    cpu = 0.0
    for path in stats_files:
        text = path.read_text() if path.exists() else ""
        stats = json.loads(text) if text else {}
        cpu += stats.pop("cpu_end", 0.0) - stats.pop("cpu_first_pass", 0.0)
        total.update(stats)
        path.unlink(missing_ok=True)
    passes = max(total["pass:calls"], 1)
    claims = max(total["claim:calls"], 1)
    entries = [len(b["keys"]) for b in batches]
    return {
        "passes": total["pass:calls"],
        "ms_per_pass": total["pass:seconds"] * 1000 / passes,
        "claim_ms": total["claim:seconds"] * 1000 / claims,
        "publish_ms": total["publish_batch:seconds"] * 1000 / max(total["publish_batch:calls"], 1),
        "delete_ms": total["mark_sent:seconds"] * 1000 / max(total["mark_sent:calls"], 1),
        "rows_per_claim": total["claimed_rows"] / claims,
        "empty_claims": total["empty_claims"],
        "empty_claims_with_backlog": total["empty_claims_with_backlog"],
        "partial_claims": total["partial_claims"],
        "drains": total["drain:calls"],
        "entries_per_publish_batch": sum(entries) / max(len(entries), 1),
        "relay_cpu_s": cpu,
    }


def store_first(bench: Bench, n: int) -> Callable[[Topic, str], Filled]:
    """N events stored in the outbox (500 per transaction) before the relays start."""

    def fill(topic: Topic, scenario: str) -> Filled:
        publisher = EventPublisher(OutboxPublisher(SqlAlchemyOutboxStore(bench.sessions)), publisher_name="bench")
        events = payloads(scenario, n)
        for start in range(0, n, 500):
            publisher.publish_batch(events[start : start + 500])
        return Filled({p.key: 0.0 for p in events})

    return fill


def steady_writer(bench: Bench, rate: float, seconds: float) -> Callable[[Topic, str], Filled]:
    """One event per transaction at ``rate`` per second, as a service commits its work; returns commit times."""

    def fill(topic: Topic, scenario: str) -> Filled:
        repository = SqlAlchemyEntityRepository(bench.sessions)
        store = SqlAlchemyOutboxStore(bench.sessions, repository)
        publisher = EventPublisher(OutboxPublisher(store), publisher_name="bench")  # no relay: no fast path
        committed: dict[str, float] = {}
        events = payloads(scenario, int(rate * seconds))
        start = time.perf_counter()
        for i, payload in enumerate(events):
            pause = start + i / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            with repository.atomic():
                publisher.publish(payload)
            committed[payload.key] = time.time()
        elapsed = time.perf_counter() - start
        return Filled(committed, len(events) / elapsed)

    return fill


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", default="http://127.0.0.1:4567")
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/bench_relay")
    parser.add_argument("--n", type=int, default=5000, help="events of the throughput scenarios")
    parser.add_argument("--rate", type=float, default=200.0, help="events per second the latency writer commits")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the latency writer writes")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--batch-size", type=int, default=0, help="EVENTBUS_OUTBOX_BATCH_SIZE (0: the default)")
    parser.add_argument("--interval", type=float, default=0.0, help="EVENTBUS_OUTBOX_RELAY_INTERVAL (0: default)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of all the scenarios; the median is shown")
    parser.add_argument("--timeout", type=float, default=600.0, help="longest wait for a scenario's events")
    args = parser.parse_args(argv)
    extra: dict[str, str] = {}
    if args.batch_size:
        extra["EVENTBUS_OUTBOX_BATCH_SIZE"] = str(args.batch_size)
    if args.interval:
        extra["EVENTBUS_OUTBOX_RELAY_INTERVAL"] = str(args.interval)
    bench = Bench(args.endpoint, args.database_url, extra)
    latency_n = int(args.rate * args.seconds)
    table: dict[str, Callable[[], Result]] = {
        "batch-publish": lambda: batch_publish(bench, args.n),
        "relay-1": lambda: relayed(bench, "relay-1", 1, args.n, store_first(bench, args.n), args.timeout),
        "relay-2": lambda: relayed(bench, "relay-2", 2, args.n, store_first(bench, args.n), args.timeout),
        "latency-1": lambda: relayed(
            bench, "latency-1", 1, latency_n, steady_writer(bench, args.rate, args.seconds), args.timeout
        ),
        "latency-2": lambda: relayed(
            bench, "latency-2", 2, latency_n, steady_writer(bench, args.rate, args.seconds), args.timeout
        ),
    }
    chosen = [s for s in args.only.split(",") if s] or list(table)
    rounds: list[dict[str, Result]] = []
    for k in range(args.repeat):
        rounds.append({})
        for name in chosen:
            result = rounds[-1][name] = table[name]()
            summary = f"{result.per_second:8.1f} events/s, {result.calls_per_event:.3f} SNS calls/event"
            if result.latency_ms:
                summary += f", p50 {result.latency_ms['p50']:.0f} ms, p99 {result.latency_ms['p99']:.0f} ms"
                summary += f", written at {result.written_per_second:.0f}/s"
            print(f"  round {k + 1}, {name}: {summary}", flush=True)
    report(args, extra, chosen, rounds)
    return 0


def median_round(name: str, rounds: list[dict[str, Result]]) -> Result:
    """The round whose figure is the median: events/s for throughput, p99 latency for the latency scenarios."""

    def figure(result: Result) -> float:
        return result.latency_ms.get("p99", 0.0) if name.startswith("latency") else result.per_second

    ordered = sorted((r[name] for r in rounds), key=figure)
    return ordered[len(ordered) // 2]


def report(args: argparse.Namespace, extra: dict[str, str], chosen: list[str], rounds: list[dict[str, Result]]) -> None:
    """Print the tables (the median round of each scenario; ratios per round), write the JSON."""
    results = [median_round(name, rounds) for name in chosen]
    baseline = next((r.per_second for r in results if r.scenario == "batch-publish"), None)
    settings = ", ".join(f"{k}={v}" for k, v in extra.items()) or "shipped relay settings"
    print(f"\nN={args.n} (throughput), {args.rate:g}/s for {args.seconds:g}s (latency), {settings}, {args.endpoint}")
    print(f"median of {args.repeat} round(s); each round runs the scenarios in turn")
    if baseline and args.repeat > 1:
        for name in chosen:
            if name.startswith("relay"):
                ratios = sorted(r[name].per_second / r["batch-publish"].per_second for r in rounds)
                shown = ", ".join(f"{x:.2f}" for x in ratios)
                print(f"  {name} / batch-publish of the same round: {shown} (median {ratios[len(ratios) // 2]:.2f})")
    head = f"{'events/s':>9} {'x batch':>8} {'SNS/ev':>7} {'p50 ms':>7} {'p99 ms':>7} {'spy p50':>8} {'spy p99':>8}"
    head += f" {'twice':>5} {'spy dup':>7} {'missing':>7} {'left':>5} {'CPU s/1k':>8}"
    print(f"{'scenario':<14} {'relays':>6} {'events':>6} {head}")
    for r in results:
        ratio = f"{r.per_second / baseline:.2f}" if baseline else "-"
        lat = [
            r.latency_ms.get("p50"),
            r.latency_ms.get("p99"),
            r.spy_latency_ms.get("p50"),
            r.spy_latency_ms.get("p99"),
        ]
        p50, p99, s50, s99 = ("-" if v is None else f"{v:.0f}" for v in lat)
        cols = f"{r.per_second:9.1f} {ratio:>8} {r.calls_per_event:7.3f} {p50:>7} {p99:>7} {s50:>8} {s99:>8}"
        cols += f" {r.published_twice:5d} {r.spy_duplicates:7d} {r.spy_missing:7d} {r.left_in_outbox:5d}"
        cols += f" {r.cpu_seconds_per_1000:8.2f}"
        print(f"{r.scenario:<14} {r.relays:6d} {r.events:6d} {cols}")
    profiled = [r for r in results if r.profile]
    if profiled:
        print("\nrelay profile (summed over the relays; ms are means per call)")
        head = f"{'passes':>6} {'ms/pass':>8} {'claim':>6} {'publish':>8} {'delete':>7} {'rows/claim':>10}"
        head += f" {'empty':>6} {'lost':>5} {'partial':>7} {'drains':>6} {'entries/PublishBatch':>20}"
        print(f"{'scenario':<14} {head}")
        for r in profiled:
            p = r.profile
            cols = f"{p['passes']:6.0f} {p['ms_per_pass']:8.2f} {p['claim_ms']:6.2f} {p['publish_ms']:8.2f}"
            cols += f" {p['delete_ms']:7.2f} {p['rows_per_claim']:10.2f} {p['empty_claims']:6.0f}"
            cols += f" {p['empty_claims_with_backlog']:5.0f}"
            cols += f" {p['partial_claims']:7.0f} {p['drains']:6.0f} {p['entries_per_publish_batch']:20.2f}"
            print(f"{r.scenario:<14} {cols}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"relay-{time.strftime('%Y%m%d-%H%M%S')}.json"
    everything = [[asdict(r) for r in one.values()] for one in rounds]
    path.write_text(
        json.dumps({"args": vars(args), "median": [asdict(r) for r in results], "rounds": everything}, indent=2)
    )
    print(f"\nwritten {path.relative_to(ROOT)}")


if __name__ == "__main__":
    raise SystemExit(main())
