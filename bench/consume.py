"""Consume benchmark: SQSConsumer events vs plain Celery tasks vs a raw boto3 drain, on one SNS/SQS endpoint.

    python -m bench.consume --endpoint http://127.0.0.1:4567 --n 2000 --repeat 3

LocalStack in host mode (``../shared/tools/localstack-host start 4567``) is the intended endpoint: moto rescans a
queue on every call, so on moto this measures moto. Each scenario pre-fills a fresh queue with N messages, then
times the drain from the first handled message to the last (prefork, concurrency 2), counts SQS requests made by the
worker's main process, and the worker's CPU seconds. Prints a table and writes JSON under ``bench/results/``.

The claim-checked scenarios (``--only eventbus-events-claim-checked,eventbus-events-100k,...``) store each event in
S3 and send its pointer: S3 is ``BENCH_S3_ENDPOINT``, else the endpoint's when it serves S3, else an embedded moto.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import boto3
import redis

ROOT = Path(__file__).resolve().parents[1]
REGION = "eu-west-2"
# eventbus workers run task messages from the queue only when signed: the filler and the workers share this key
os.environ.setdefault("EVENTBUS_SIGNING_KEY", "bench-signing-key")


@dataclass
class Result:
    scenario: str
    n: int
    seconds: float
    per_second: float
    sqs_calls: int
    calls_per_message: float
    cpu_seconds_per_1000: float
    calls: dict[str, int]
    duplicates: int = 0
    left_in_queue: int = 0
    #: CPU seconds per 1,000 messages of the worker's processes from the first handled message to the last (start-up
    #: and shutdown left out); for the raw drain, this process's CPU
    steady_cpu_seconds_per_1000: float = 0.0
    #: of which the worker's main process (receiving, routing, handing to the pool, acknowledging)
    steady_main_cpu_seconds_per_1000: float = 0.0


def clients(endpoint: str) -> tuple[Any, Any]:
    kwargs: dict[str, Any] = {
        "endpoint_url": endpoint,
        "region_name": REGION,
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    }
    return boto3.client("sqs", **kwargs), boto3.client("sns", **kwargs)


def envelope(i: int, pad: int = 0, traced: bool = False) -> str:
    metadata = {"eventName": "benchEvent", "publisherName": "bench", "entityId": str(i), "publishDate": "2026-01-01"}
    if traced:  # as an eventbus publisher sends it: W3C trace context, a trace of its own per event
        metadata["traceparent"] = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
    payload: dict[str, Any] = {"i": i, "pad": "x" * pad} if pad else {"i": i}
    return json.dumps({"metadata": metadata, "payload": payload})


def fill_events(sqs: Any, url: str, n: int, pad: int = 0, traced: bool = False) -> None:
    per_call = 10 if pad < 20_000 else 1  # SendMessageBatch carries 256 KiB at most
    for start in range(0, n, per_call):
        entries = [
            {"Id": str(i), "MessageBody": envelope(i, pad, traced)} for i in range(start, min(start + per_call, n))
        ]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)


def fill_fifo(sqs: Any, url: str, n: int, groups: int) -> None:
    """N events over ``groups`` message groups, interleaved (event i in group i % groups), as SNS FIFO delivers them."""
    for start in range(0, n, 10):
        entries = [
            {
                "Id": str(i),
                "MessageBody": envelope(i),
                "MessageGroupId": f"g{i % groups}",
                "MessageDeduplicationId": str(i),
            }
            for i in range(start, min(start + 10, n))
        ]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)


_S3: dict[str, Any] = {}


def s3_store(endpoint: str) -> tuple[Any, str, str]:
    """An S3 client, a bucket and the S3 endpoint for claim-checked scenarios: ``BENCH_S3_ENDPOINT``, else the SNS/SQS
    endpoint when it serves S3, else an embedded moto server of its own (started once, for the whole run)."""
    if not _S3:
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError

        def client(url: str) -> Any:
            config = Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1})
            return boto3.client(
                "s3",
                endpoint_url=url,
                region_name=REGION,
                aws_access_key_id="test",
                aws_secret_access_key="test",
                config=config,
            )

        url = os.environ.get("BENCH_S3_ENDPOINT", endpoint)
        try:
            client(url).list_buckets()
        except (BotoCoreError, ClientError):
            from eventbus.emulator import EmulatorServer

            server = EmulatorServer(port=0, region=REGION)
            server.start()
            _S3["server"] = server
            url = server.endpoint_url
        bucket = f"bench-{uuid.uuid4().hex[:10]}"
        s3 = client(url)
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        _S3.update(client=s3, bucket=bucket, url=url)
    return _S3["client"], _S3["bucket"], _S3["url"]


def fill_claimed(sqs: Any, url: str, n: int, pad: int, endpoint: str) -> None:
    """N events stored in S3, each sent as the extended clients' pointer (what a claim-checking publisher sends)."""
    from eventbus.core.claim_check import Pointer

    s3, bucket, _ = s3_store(endpoint)
    for start in range(0, n, 10):
        entries = []
        for i in range(start, min(start + 10, n)):
            key = uuid.uuid4().hex
            s3.put_object(Bucket=bucket, Key=key, Body=envelope(i, pad).encode())
            entries.append({"Id": str(i), "MessageBody": Pointer(bucket, key).to_json()})
        sqs.send_message_batch(QueueUrl=url, Entries=entries)


def fill_tasks(endpoint: str, queue: str, n: int) -> None:
    env = dict(os.environ, EVENTBUS_ENDPOINT_URL=endpoint, EVENTBUS_QUEUE_NAME=queue, EVENTBUS_REGION=REGION)
    code = (
        "from bench.bench_app import app, bench_task\n"
        "with app.producer_or_acquire() as producer:\n"
        f"    [bench_task.apply_async((i,), producer=producer) for i in range({n})]\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True)


def left_in(sqs: Any, url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


def tree_cpu(group: int) -> tuple[float, float]:
    """CPU seconds (user + system) used so far by the live processes of process group ``group`` and by its leader
    (the worker's main process), from ``/proc``."""
    total = leader = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        # after the command: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
        if int(fields[2]) == group:
            used = int(fields[11]) + int(fields[12])
            total += used
            if stat.parent.name == str(group):
                leader = used
    tick = os.sysconf("SC_CLK_TCK")
    return total / tick, leader / tick


#: A worker that has handled nothing this long after its start is stuck (e.g. retrying a connection it cannot make).
STALLED_SECONDS: Final = 90


def run_worker(endpoint: str, queue: str, n: int, counter: str, extra_env: dict[str, str]) -> Result:
    r = redis.Redis.from_url(os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0"))
    r.delete(counter)
    calls_file = Path(tempfile.mkstemp(suffix=".json")[1])
    env = dict(
        os.environ,
        EVENTBUS_ENDPOINT_URL=endpoint,
        EVENTBUS_QUEUE_NAME=queue,
        EVENTBUS_REGION=REGION,
        BENCH_COUNTER=counter,
        BENCH_CALLS=str(calls_file),
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]),  # this tree's eventbus, even from a copy
        # bare queues on purpose (no topic, no dead-letter queue): the start-up checks warn instead of refusing
        EVENTBUS_STARTUP_CHECKS="warn",
        **extra_env,
    )
    pool = extra_env.get("BENCH_POOL", "prefork")
    cmd = [sys.executable, "-m", "celery", "-A", "bench.bench_app", "worker", "-Q", queue, "-c", "2", "-P", pool]
    cmd += ["--without-heartbeat", "--without-mingle", "--without-gossip", "-l", "warning"]
    if os.environ.get("BENCH_WORKER_CPUS"):
        # the worker on CPUs of its own (e.g. LocalStack pinned to the others): its cost per event sets the rate
        cmd = ["taskset", "-c", os.environ["BENCH_WORKER_CPUS"], *cmd]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    worker = subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True)
    try:
        first = last = 0.0
        first_done = 0
        cpu_first = cpu_last = (0.0, 0.0)
        started = time.monotonic()
        deadline = started + 600
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                raise RuntimeError(f"{queue}: the worker exited with {worker.returncode} (its output is above)")
            if not first and time.monotonic() - started > STALLED_SECONDS:
                raise RuntimeError(f"{queue}: nothing handled {STALLED_SECONDS} s after the worker started (above)")
            done = int(r.get(counter) or 0)
            now = time.perf_counter()
            if done and not first:
                first, first_done, cpu_first = now, done, tree_cpu(worker.pid)
            if done >= n:
                last, cpu_last = now, tree_cpu(worker.pid)
                break
            time.sleep(0.01)
        else:
            raise RuntimeError(f"{queue}: only {r.get(counter)} of {n} handled")
        time.sleep(1.0)  # anything handled twice shows up as a count above n
    finally:
        with contextlib.suppress(ProcessLookupError):  # gone already: it exited by itself
            os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    handled = int(r.get(counter) or 0)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    calls = json.loads(calls_file.read_text() or "{}") if calls_file.exists() else {}
    calls_file.unlink(missing_ok=True)
    total = sum(calls.values())
    seconds = max(last - first, 1e-9)
    result = Result("", n, seconds, (n - 1) / seconds, total, total / n, cpu * 1000 / n, calls, handled - n)
    steady_n = max(n - first_done, 1)
    result.steady_cpu_seconds_per_1000 = (cpu_last[0] - cpu_first[0]) * 1000 / steady_n
    result.steady_main_cpu_seconds_per_1000 = (cpu_last[1] - cpu_first[1]) * 1000 / steady_n
    return result


def raw_drain(sqs: Any, url: str, n: int) -> Result:
    calls: dict[str, int] = {"ReceiveMessage": 0, "DeleteMessageBatch": 0}
    handled = 0
    start = time.perf_counter()
    cpu0 = time.process_time()
    while handled < n:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        calls["ReceiveMessage"] += 1
        if messages:
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
            sqs.delete_message_batch(QueueUrl=url, Entries=entries)
            calls["DeleteMessageBatch"] += 1
            handled += len(messages)
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    total = sum(calls.values())
    return Result(
        "", n, seconds, n / seconds, total, total / n, cpu * 1000 / n, calls, 0, 0, cpu * 1000 / n, cpu * 1000 / n
    )


def scenarios(endpoint: str, n: int, worker_endpoint: str) -> dict[str, Callable[[], Result]]:
    """Scenario name -> run. Queues are filled through ``endpoint``; workers talk to ``worker_endpoint``."""
    sqs, _ = clients(endpoint)

    def fresh_queue() -> tuple[str, str]:
        name = f"bench-{uuid.uuid4().hex[:10]}"
        return name, sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "60"})["QueueUrl"]

    def worker_run(fill: Callable[[str, str], None], extra: dict[str, str]) -> Callable[[], Result]:
        def run() -> Result:
            name, url = fresh_queue()
            fill(name, url)
            result = run_worker(worker_endpoint, name, n, f"bench:{name}", extra)
            result.left_in_queue = left_in(sqs, url)
            return result

        return run

    def events(extra: dict[str, str], traced: bool = False) -> Callable[[], Result]:
        return worker_run(lambda name, url: fill_events(sqs, url, n, traced=traced), extra)

    def tasks(extra: dict[str, str]) -> Callable[[], Result]:
        return worker_run(lambda name, url: fill_tasks(endpoint, name, n), extra)

    def fifo(groups: int) -> Callable[[], Result]:
        def run() -> Result:
            name = f"bench-{uuid.uuid4().hex[:10]}.fifo"
            attributes = {"VisibilityTimeout": "60", "FifoQueue": "true", "ContentBasedDeduplication": "false"}
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            fill_fifo(sqs, url, n, groups)
            result = run_worker(worker_endpoint, name, n, f"bench:{name}", {"EVENTBUS_FIFO": "true"})
            result.left_in_queue = left_in(sqs, url)
            return result

        return run

    def claimed(pad: int) -> Callable[[], Result]:
        s3_url = lambda: s3_store(endpoint)[2]  # noqa: E731
        run = worker_run(lambda name, url: fill_claimed(sqs, url, n, pad, endpoint), {})

        def with_s3() -> Result:
            os.environ["EVENTBUS_S3_ENDPOINT_URL"] = s3_url()  # the worker inherits it
            return run()

        return with_s3

    def raw() -> Result:
        _, url = fresh_queue()
        fill_events(sqs, url, n)
        return raw_drain(clients(worker_endpoint)[0], url, n)

    usual = {"BENCH_PREFETCH": "4", "BENCH_POLLING_INTERVAL": "0.1", "EVENTBUS_WAIT_TIME_SECONDS": "1"}
    tuned = {"BENCH_PREFETCH": "16", "BENCH_POLLING_INTERVAL": "0", "EVENTBUS_WAIT_TIME_SECONDS": "1"}
    return {
        "stock-usual-tasks": tasks({**usual, "BENCH_STOCK": "all"}),
        "stock-tuned-tasks": tasks({**tuned, "BENCH_STOCK": "all"}),
        "raw-boto3-drain": raw,
        "consumer-on-stock-transport-events": events({**usual, "BENCH_STOCK": "transport"}),
        "eventbus-events": events({}),
        "eventbus-tasks": tasks({}),
        # the same events in other pools: two threads of the worker's process, or the worker's own thread
        "eventbus-events-threads": events({"BENCH_POOL": "threads"}),
        "eventbus-events-threads-telemetry-off": events({"BENCH_POOL": "threads", "EVENTBUS_TELEMETRY": "off"}),
        "eventbus-events-threads-otel-sdk-noop": events({"BENCH_POOL": "threads", "BENCH_OTEL": "noop"}),
        "eventbus-events-solo": events({"BENCH_POOL": "solo"}),
        # telemetry: the same events with OpenTelemetry off, with an SDK exporting to nothing, to memory
        "eventbus-events-telemetry-off": events({"EVENTBUS_TELEMETRY": "off"}),
        "eventbus-events-otel-sdk-bare": events({"BENCH_OTEL": "bare"}),
        "eventbus-events-otel-sdk-noop": events({"BENCH_OTEL": "noop"}),
        "eventbus-events-otel-sdk-memory": events({"BENCH_OTEL": "memory"}),
        "eventbus-events-otel-sdk-sampled-10": events({"BENCH_OTEL": "sampled-10"}),
        # the same with a traceparent in every event, as eventbus's publishers send them
        "eventbus-events-traced-telemetry-off": events({"EVENTBUS_TELEMETRY": "off"}, traced=True),
        "eventbus-events-traced-otel-sdk-noop": events({"BENCH_OTEL": "noop"}, traced=True),
        "eventbus-events-traced-otel-sdk-sampled-10": events({"BENCH_OTEL": "sampled-10"}, traced=True),
        # FIFO (issue 15): the same events in 1, 10 and 100 message groups of a FIFO queue
        "eventbus-events-fifo-1-group": fifo(1),
        "eventbus-events-fifo-10-groups": fifo(10),
        "eventbus-events-fifo-100-groups": fifo(100),
        # claim-check (issue 15): the same small events as pointers to S3 objects; 100 KiB events inline and claimed
        "eventbus-events-claim-checked": claimed(0),
        "eventbus-events-100k": worker_run(lambda name, url: fill_events(sqs, url, n, 100 * 1024), {}),
        "eventbus-events-100k-claim-checked": claimed(100 * 1024),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", default="http://127.0.0.1:4567")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--baseline", default="stock-tuned-tasks", help="the scenario ratios are against")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="add this delay to every worker request")
    parser.add_argument("--pin", action="store_true", help="endpoint on CPUs of its own (bench/pinning.py)")
    parser.add_argument(
        "--count",
        choices=["each", "batched"],
        default="each",
        help="how handlers count: a Redis INCR per message, or per-process sums added every 5 ms (bench_app)",
    )
    parser.add_argument(
        "--handler-cpu-us",
        type=int,
        default=0,
        help="handlers also spend this much CPU time (microseconds) per message, as a handler doing work would",
    )
    args = parser.parse_args(argv)
    os.environ["BENCH_COUNT"] = args.count  # the workers inherit it
    os.environ["BENCH_HANDLER_CPU_US"] = str(args.handler_cpu_us)
    if args.pin:
        from bench.pinning import pinned

        with pinned(args.endpoint) as placement:
            print(f"pinned: {placement}", flush=True)
            return _run(args)
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    if args.latency_ms:
        from bench.latency_proxy import LatencyProxy

        port = int(args.endpoint.rsplit(":", 1)[1].strip("/"))
        with LatencyProxy(port, delay=args.latency_ms / 1000) as proxy:
            print(f"workers reach {args.endpoint} through {proxy.url}, +{args.latency_ms:g} ms per request")
            return measure(args, scenarios(args.endpoint, args.n, proxy.url))
    return measure(args, scenarios(args.endpoint, args.n, args.endpoint))


def _paired(runs: dict[str, list[Result]], scenario: str, baseline: str) -> str:
    """The median of the scenario's rate over the baseline's in each round (range): drift between rounds cancels."""
    if baseline not in runs:
        return "-"
    ratios = sorted(a.per_second / b.per_second for a, b in zip(runs[scenario], runs[baseline], strict=False))
    if not ratios:
        return "-"
    return f"{ratios[len(ratios) // 2]:.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f})"


def measure(args: argparse.Namespace, table: dict[str, Callable[[], Result]]) -> int:
    """Run the chosen scenarios, print the table, write the JSON."""
    chosen = [s for s in args.only.split(",") if s] or list(table)
    runs: dict[str, list[Result]] = {name: [] for name in chosen}
    # round robin (every scenario once, then again): a machine that gets busier or quieter meanwhile weighs on all
    for _ in range(args.repeat):
        for name in chosen:
            result = table[name]()
            result.scenario = name
            runs[name].append(result)
            print(
                f"  {name}: {result.per_second:8.1f} msg/s, {result.calls_per_message:.2f} SQS calls/msg, "
                f"{result.steady_cpu_seconds_per_1000:.2f} CPU s/1000 steady "
                f"(main process {result.steady_main_cpu_seconds_per_1000:.2f})",
                flush=True,
            )
    results = [sorted(runs[name], key=lambda r: r.per_second)[len(runs[name]) // 2] for name in chosen]
    baseline = next((r.per_second for r in results if r.scenario == args.baseline), None)
    latency = f", +{args.latency_ms:g} ms per request" if args.latency_ms else ""
    pin = ", pinned" if getattr(args, "pin", False) else ""
    pin += ", handlers count in batches" if getattr(args, "count", "each") == "batched" else ""
    pin += f", handlers spend {args.handler_cpu_us} µs CPU each" if getattr(args, "handler_cpu_us", 0) else ""
    pools = "-c 2 (prefork unless the name says threads or solo)"
    print(f"\nN={args.n}, median of {args.repeat}, endpoint {args.endpoint}{latency}{pin}, {pools}")
    head = f"{'msg/s':>9} {'x base':>8} {'paired':>17} {'SQS calls/msg':>14} {'CPU s/1000':>11} {'steady':>7}"
    head += f" {'main':>5} {'dup':>4} {'left':>5}"
    print(f"{'scenario':<36} {head}")
    for r in results:
        ratio = f"{r.per_second / baseline:.2f}" if baseline else "-"
        paired = _paired(runs, r.scenario, args.baseline)
        # steady: the median of the scenario's runs (CPU per message varies less than the rate)
        steady = sorted(x.steady_cpu_seconds_per_1000 for x in runs[r.scenario])[len(runs[r.scenario]) // 2]
        main = sorted(x.steady_main_cpu_seconds_per_1000 for x in runs[r.scenario])[len(runs[r.scenario]) // 2]
        cols = f"{r.per_second:9.1f} {ratio:>8} {paired:>17} {r.calls_per_message:14.2f} {r.cpu_seconds_per_1000:11.2f}"
        cols += f" {steady:7.2f} {main:5.2f} {r.duplicates:4d} {r.left_in_queue:5d}"
        print(f"{r.scenario:<36} {cols}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"consume-{time.strftime('%Y%m%d-%H%M%S')}{'-latency' if args.latency_ms else ''}.json"
    path.write_text(json.dumps([asdict(r) for r in results], indent=2))
    print(f"\nwritten {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
