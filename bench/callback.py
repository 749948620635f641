"""Callback-task benchmark: ``DjangoCeleryTaskWithCallback`` (direct, outbox) vs the same work written by hand.

    python -m bench.callback --endpoint http://127.0.0.1:4567 --n 1000 --repeat 3

Each task loads an ``Order`` from PostgreSQL, sets its ``status``, saves it in a transaction, and its ``orderShipped``
event is published to SNS after the commit. Scenarios, in one run, each on a fresh topic, queues and rows:
``hand-written`` (a plain Celery task: ``Model.objects.get``, ``transaction.atomic()``, ``transaction.on_commit``
with one boto3 SNS client per process: the baseline), ``callback-direct`` (the callback base, outbox off) and
``callback-outbox`` (``EVENTBUS_OUTBOX=django``: the event is written to ``eventbus_outbox`` in the task's
transaction and sent after the commit by the task's process; the relay thread the worker's main process runs sends
what that did not; no separate relay process exists or is needed: ``EVENTBUS_OUTBOX`` adds the relay to the worker).
``callback-outbox-batched`` is the outbox without its fast path (``EVENTBUS_OUTBOX_FAST_PATH=false``): tasks only
write their rows and the relay thread sends them in ``PublishBatch`` calls, polling every 0.05 s
(``EVENTBUS_OUTBOX_RELAY_INTERVAL``).

Each scenario creates N rows, pre-fills a fresh SQS queue with N ``.delay(id)`` messages, starts a real worker
(``celery -A bench.callback_project.celery_app worker -c 2 -P prefork``), and times from the first task that
succeeded (the earliest ``task_success`` of the pool children) to the last event that reached SNS. An event reached
SNS when a spy queue subscribed to the topic (raw delivery) receives it: completion is counted there, by distinct
``metadata.entityId`` (one success event per order), and events received twice are reported. Counting SNS publishes
would not be exact: a call is counted before SNS answers, and a ``PublishBatch`` can fail in part. SNS calls are
counted in every process that makes them (pool children, and the worker's main process where the outbox relay runs)
by wrapping botocore's API call. Then, unless ``--sql-n 0``, a short census run per scenario counts SQL statements
and commits per task (a Redis call per statement, so not in the timed runs). ``--profile`` profiles the pool children
of the timed runs with cProfile (``bench/results/callback-<scenario>-<pid>.prof``), which slows them.

``--repeat R`` runs the scenarios in turn R times (ABC ABC ...) and keeps each one's median: on a shared machine the
load drifts over every scenario alike. Prints a table and writes JSON under ``bench/results/``. PostgreSQL at
127.0.0.1:5432 (user postgres, trust auth; the database ``eventbus_bench_callback`` is created if missing), Redis at
127.0.0.1:6379.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import boto3
import psycopg
import redis

ROOT = Path(__file__).resolve().parents[1]
REGION = "eu-west-2"
APP = "bench.callback_project.celery_app"
# eventbus workers run task messages from the queue only when signed: the filler and the workers share this key
os.environ.setdefault("EVENTBUS_SIGNING_KEY", "bench-signing-key")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.callback_project.settings")
os.environ.setdefault("BENCH_CALLBACK_DB", "eventbus_bench_callback")

#: scenario -> (task name, the worker's extra environment)
SCENARIOS: dict[str, tuple[str, dict[str, str]]] = {
    "hand-written": ("bench.callback.ship_order_by_hand", {"EVENTBUS_OUTBOX": "off"}),
    "callback-direct": ("bench.callback.ship_order", {"EVENTBUS_OUTBOX": "off"}),
    "callback-outbox": ("bench.callback.ship_order", {"EVENTBUS_OUTBOX": "django"}),
    # the outbox without its fast path: every event sent by the relay thread, in batches
    "callback-outbox-batched": (
        "bench.callback.ship_order",
        {"EVENTBUS_OUTBOX": "django", "EVENTBUS_OUTBOX_FAST_PATH": "false", "EVENTBUS_OUTBOX_RELAY_INTERVAL": "0.05"},
    ),
}
#: What runs without --only.
DEFAULT_SCENARIOS = ["hand-written", "callback-direct", "callback-outbox", "callback-outbox-batched"]


@dataclass
class Result:
    scenario: str
    n: int
    seconds: float = 0.0
    per_second: float = 0.0
    events: int = 0
    duplicates: int = 0
    sns_calls: dict[str, int] = field(default_factory=dict)
    sns_calls_per_event: float = 0.0
    cpu_seconds_per_1000: float = 0.0
    left_in_queue: int = 0
    left_in_outbox: int = 0
    not_shipped: int = 0
    sql: dict[str, int] = field(default_factory=dict)
    sql_per_task: float = 0.0
    commits_per_task: float = 0.0
    runs_per_second: list[float] = field(default_factory=list)


def aws(service: str, endpoint: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def ensure_database() -> None:
    """Create the bench's database if missing, then its tables (``migrate``)."""
    name = os.environ["BENCH_CALLBACK_DB"]
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def fresh_rows(n: int) -> None:
    """Empty the orders and the outbox, then create N new orders."""
    from django.db import connection

    from bench.callback_project.orders.models import Order

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE orders_order, eventbus_outbox")
    Order.objects.bulk_create([Order() for _ in range(n)], batch_size=1000)
    connection.close()  # the worker and the census must not wait on this process's connection


def fill(env: dict[str, str], task: str) -> None:
    """``.delay(id)`` for every new order, through the app's producer (signed, as the workers require)."""
    code = (
        "from bench.callback_project.celery_app import app\n"
        "from bench.callback_project.orders.models import Order\n"
        "ids = [str(i) for i in Order.objects.filter(status='new').values_list('id', flat=True)]\n"
        f"task = app.tasks[{task!r}]\n"
        "with app.producer_or_acquire() as producer:\n"
        "    [task.apply_async((i,), producer=producer) for i in ids]\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True)


class Spy:
    """A queue subscribed to the topic (raw delivery): when each event's ``entityId`` first arrived, and repeats."""

    def __init__(self, endpoint: str, topic_arn: str, threads: int = 2) -> None:
        self.sqs = aws("sqs", endpoint)
        self.sns = aws("sns", endpoint)
        name = f"bench-cb-spy-{uuid.uuid4().hex[:10]}"
        # received messages are never deleted: a long visibility timeout keeps them from coming back
        self.url = self.sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "900"})["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.subscription = self.sns.subscribe(
            TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"}
        )["SubscriptionArn"]
        self.seen: dict[str, float] = {}
        self.duplicates = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        clients = [aws("sqs", endpoint) for _ in range(threads)]
        self._threads = [threading.Thread(target=self._receive, args=(c,), daemon=True) for c in clients]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def _receive(self, sqs: Any) -> None:
        while not self._stop.is_set():
            messages = sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            now = time.time()
            for message in messages.get("Messages", []):
                entity = json.loads(message["Body"])["metadata"]["entityId"]
                with self._lock:
                    if entity in self.seen:
                        self.duplicates += 1
                    else:
                        self.seen[entity] = now

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self.sns.unsubscribe(SubscriptionArn=self.subscription)
        self.sqs.delete_queue(QueueUrl=self.url)


def left_in(sqs: Any, url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


def run_scenario(endpoint: str, scenario: str, n: int, *, census: bool = False, profile: bool = False) -> Result:
    """One scenario on a fresh topic, work queue, spy queue and rows; ``census`` counts SQL instead of timing."""
    from bench.callback_project.orders.models import Order
    from eventbus.adapters.django_orm.models import OutboxMessage

    task, extra = SCENARIOS[scenario]
    sqs, sns = aws("sqs", endpoint), aws("sns", endpoint)
    tag = uuid.uuid4().hex[:10]
    topic = sns.create_topic(Name=f"bench-cb-{tag}")["TopicArn"]
    queue = f"bench-cb-{tag}"
    url = sqs.create_queue(QueueName=queue, Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    r = redis.Redis.from_url(os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0"))
    keys = {"BENCH_SNS_CALLS": f"bench:cb:{tag}:sns", "BENCH_FIRST": f"bench:cb:{tag}:first"}
    if census:
        keys["BENCH_SQL"] = f"bench:cb:{tag}:sql"
    if profile:
        keys["BENCH_CPROFILE"] = str(ROOT / "bench" / "results" / f"callback-{scenario}")
    env = dict(
        os.environ,
        EVENTBUS_ENDPOINT_URL=endpoint,
        EVENTBUS_REGION=REGION,
        EVENTBUS_QUEUE_NAME=queue,
        EVENTBUS_TOPIC_ARN=topic,
        EVENTBUS_SERVICE="bench",
        # a bare work queue (not subscribed, no dead-letter queue): the start-up checks warn instead of refusing
        EVENTBUS_STARTUP_CHECKS="warn",
        PYTHONPATH=str(ROOT),
        **keys,
        **extra,
    )
    spy = Spy(endpoint, topic)
    result = Result(scenario, n)
    try:
        fresh_rows(n)
        fill(env, task)
        spy.start()
        cmd = [sys.executable, "-m", "celery", "-A", APP, "worker", "-Q", queue, "-c", "2", "-P", "prefork"]
        cmd += ["--without-heartbeat", "--without-mingle", "--without-gossip", "-l", "warning"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        worker = subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True)
        try:
            deadline, progress, count = time.monotonic() + 600, time.monotonic(), 0
            while len(spy.seen) < n:
                if len(spy.seen) != count:
                    count, progress = len(spy.seen), time.monotonic()
                if time.monotonic() > deadline or time.monotonic() - progress > 90 or worker.poll() is not None:
                    raise RuntimeError(f"{scenario}: {len(spy.seen)} of {n} events reached SNS")
                time.sleep(0.02)
            time.sleep(1.0)  # an event sent twice shows up as a duplicate
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=60)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        firsts = r.zrange(keys["BENCH_FIRST"], 0, 0, withscores=True)
        first = float(firsts[0][1]) if firsts else min(spy.seen.values())
        last = max(spy.seen.values())
        result.seconds = max(last - first, 1e-9)
        result.per_second = (n - 1) / result.seconds
        result.events, result.duplicates = len(spy.seen), spy.duplicates
        calls = {text(k): int(v) for k, v in r.hgetall(keys["BENCH_SNS_CALLS"]).items()}
        result.sns_calls = calls
        publishes = sum(v for k, v in calls.items() if k.endswith((":Publish", ":PublishBatch")))
        result.sns_calls_per_event = publishes / n
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        result.cpu_seconds_per_1000 = cpu * 1000 / n
        result.left_in_queue = left_in(sqs, url)
        result.left_in_outbox = OutboxMessage.objects.count()
        result.not_shipped = Order.objects.exclude(status="shipped").count()
        if census:
            sql = {text(k): int(v) for k, v in r.hgetall(keys["BENCH_SQL"]).items()}
            tasks = max(sql.get("pool:tasks", 0), 1)
            result.sql = sql
            statements = sum(
                v for k, v in sql.items() if k.startswith("pool:") and k not in ("pool:tasks", "pool:COMMIT")
            )
            result.sql_per_task = statements / tasks
            result.commits_per_task = sql.get("pool:COMMIT", 0) / tasks
        from django.db import connection

        connection.close()
    finally:
        spy.stop()
        sqs.delete_queue(QueueUrl=url)
        sns.delete_topic(TopicArn=topic)
        r.delete(*keys.values())
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", default="http://127.0.0.1:4567")
    parser.add_argument("--n", type=int, default=1000, help="tasks (and events) per scenario")
    parser.add_argument("--only", default="", help=f"comma-separated scenario names, of {', '.join(SCENARIOS)}")
    parser.add_argument("--repeat", type=int, default=1, help="runs per scenario, in turn (ABC ABC ...); median")
    parser.add_argument("--sql-n", type=int, default=100, help="tasks of each SQL census run (0: no census)")
    parser.add_argument("--profile", action="store_true", help="cProfile the pool children of the timed runs")
    args = parser.parse_args(argv)
    chosen = [s for s in args.only.split(",") if s] or DEFAULT_SCENARIOS
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    ensure_database()
    runs: dict[str, list[Result]] = {name: [] for name in chosen}
    for _ in range(args.repeat):  # in turn, so a shared machine's load drifts over every scenario alike
        for name in chosen:
            result = run_scenario(args.endpoint, name, args.n, profile=args.profile)
            runs[name].append(result)
            print(
                f"  {name}: {result.per_second:8.1f} tasks/s, {result.sns_calls_per_event:.2f} SNS calls/event",
                flush=True,
            )
    results = []
    for name in chosen:
        result = sorted(runs[name], key=lambda r: r.per_second)[len(runs[name]) // 2]
        result.runs_per_second = [round(r.per_second, 1) for r in runs[name]]
        if args.sql_n:
            counted = run_scenario(args.endpoint, name, args.sql_n, census=True)
            result.sql, result.sql_per_task, result.commits_per_task = (
                counted.sql,
                counted.sql_per_task,
                counted.commits_per_task,
            )
        results.append(result)
    base = next((r.per_second for r in results if r.scenario == "hand-written"), None)
    print(f"\nN={args.n}, median of {args.repeat}, endpoint {args.endpoint}, PostgreSQL, prefork -c 2")
    head = f"{'tasks/s':>8} {'x hand':>7} {'SNS calls/ev':>13} {'SQL/task':>9} {'commits/task':>13} {'CPU s/1000':>11}"
    print(f"{'scenario':<16} {head} {'events':>7} {'dup':>4} {'left':>5} {'outbox':>7}")
    for r in results:
        ratio = f"{r.per_second / base:.2f}" if base else "-"
        cols = f"{r.per_second:8.1f} {ratio:>7} {r.sns_calls_per_event:13.2f} {r.sql_per_task:9.1f}"
        cols += f" {r.commits_per_task:13.1f} {r.cpu_seconds_per_1000:11.2f} {r.events:7d} {r.duplicates:4d}"
        print(f"{r.scenario:<16} {cols} {r.left_in_queue:5d} {r.left_in_outbox:7d}")
    for r in results:
        print(f"  {r.scenario}: runs {r.runs_per_second} tasks/s; SNS {r.sns_calls}; SQL {r.sql}")
    path = ROOT / "bench" / "results" / f"callback-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps([asdict(r) for r in results], indent=2))
    print(f"\nwritten {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
