"""Soak benchmark: N events through one eventbus worker; its memory over the run, lost and duplicated events, cost.

    python -m bench.soak --endpoint http://127.0.0.1:4567 --n 100000

One worker (``celery -A bench.soak_app worker -c 2 -P prefork``, ``configure(app)``'s defaults, one ``@subscribe``
handler) consumes N raw event envelopes from a fresh LocalStack SQS queue. A filler thread keeps the queue about
``--depth`` messages deep (``SendMessageBatch`` in chunks of ``--chunk``, from ``--fill-threads`` threads) while the
worker consumes, so the worker never holds all N at once. Every second the resident set size (``VmRSS``, from
``/proc``) of the worker's main process and of each pool process is sampled, with the count of events handled; the
table gives each process's RSS when 10%, 50% and 100% of the events were handled, the growth from 10% to 100% (the
target: at most 5%) and the peak. The handler records each event's id in Redis (``HINCRBY`` on a hash keyed by id):
once the queue is empty (visible and in flight) and the worker stopped, distinct ids give the lost events
(N - distinct) and the total the duplicates (total - distinct).

Throughput: events/s from the first handled event to the last, against the baseline of this run: one thread draining
a queue filled the same way (``ReceiveMessage(10)`` + ``DeleteMessageBatch``, no Celery), ``--baseline-n`` events
before the worker runs and as many after, which shows how loaded the shared machine and the endpoint were; and
events/s per tenth of the run, the last against the first (does the worker slow down?). Cost: the CPU seconds of the
worker tree per 1,000 events (``/proc`` ticks of the main process and its pool over the run; ``getrusage`` of the
worker's whole life, start-up and shutdown included), and the objects the main process's cyclic garbage collector
freed per event (``SOAK_GC``: garbage that reference counting never frees and that piles up between collections).

``--tracemalloc`` examines the worker's main process (``SOAK_TRACEMALLOC``, see ``bench/soak_app.py``): tracing
starts at 10% of the events, and at 100% the 10 largest growths since then are printed (what was allocated after 10%
and is still reachable). Tracing slows the worker: that run's figures are not the measurement.

Prints a table and writes JSON (with every sample) under ``bench/results/``.
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
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import redis

from bench.consume import REGION, ROOT, clients, left_in

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MARKS = (0.1, 0.5, 1.0)


def envelope(i: int, run: str) -> str:
    """One raw-delivery event: its id is ``payload.i`` (and ``metadata.eventId``, as a producer would set it)."""
    metadata = {
        "eventName": "soakEvent",
        "publisherName": "soak",
        "entityId": str(i),
        "eventId": f"{run}-{i}",
        "publishDate": "2026-01-01",
    }
    return json.dumps({"metadata": metadata, "payload": {"i": i}})


class Filler(threading.Thread):
    """Sends events ``0..n-1`` to the queue in chunks, keeping about ``depth`` messages visible."""

    def __init__(self, endpoint: str, url: str, n: int, depth: int, chunk: int, threads: int, run: str) -> None:
        super().__init__(name="filler", daemon=True)
        self.sqs, _ = clients(endpoint)
        self.url, self.n, self.depth, self.chunk, self.run_id = url, n, depth, chunk, run
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="fill")
        self.sent = 0
        self.depths: list[tuple[float, int]] = []  # (monotonic time, visible messages) at each check
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def send_chunk(self) -> None:
        """Send the next ``chunk`` events (batches of 10, spread over the threads)."""
        end = min(self.sent + self.chunk, self.n)
        starts = range(self.sent, end, 10)

        def batch(start: int) -> None:
            entries = [
                {"Id": str(i - start), "MessageBody": envelope(i, self.run_id)}
                for i in range(start, min(start + 10, end))
            ]
            failed = self.sqs.send_message_batch(QueueUrl=self.url, Entries=entries).get("Failed")
            if failed:
                raise RuntimeError(f"SendMessageBatch failed for {failed}")

        list(self.pool.map(batch, starts))
        self.sent = end

    def visible(self) -> int:
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["ApproximateNumberOfMessages"])
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"])

    def prefill(self) -> None:
        """Fill to ``depth`` before the worker starts."""
        while self.sent < min(self.depth, self.n):
            self.send_chunk()

    def run(self) -> None:
        try:
            while self.sent < self.n and not self.stopping.is_set():
                depth = self.visible()
                self.depths.append((time.monotonic(), depth))
                if depth < self.depth:
                    self.send_chunk()
                else:
                    time.sleep(0.1)
        except BaseException as exc:  # reported by the benchmark, which then stops
            self.error = exc
        finally:
            self.pool.shutdown()


@dataclass
class Sample:
    """One second of the worker: events handled, and per process its RSS (KiB) and CPU (seconds)."""

    t: float
    handled: int
    rss_kib: dict[str, int]
    cpu_seconds: float


def proc_stat(pid: int) -> tuple[float, float]:
    """(own CPU seconds, CPU seconds of reaped children) of a process, from ``/proc/<pid>/stat``."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # after the command name, which may contain spaces
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime) / CLOCK_TICKS, (cutime + cstime) / CLOCK_TICKS


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def children_of(pid: int) -> list[int]:
    pids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        pids += [int(x) for x in (task / "children").read_text().split()]
    return sorted(pids)


class Sampler(threading.Thread):
    """Samples the worker's processes every ``interval`` seconds until stopped."""

    def __init__(self, pid: int, progress: redis.Redis, total_key: str, interval: float) -> None:
        super().__init__(name="sampler", daemon=True)
        self.pid, self.progress, self.total_key, self.interval = pid, progress, total_key, interval
        self.labels: dict[int, str] = {pid: "main"}
        self.samples: list[Sample] = []
        self.stopping = threading.Event()

    def label(self, pid: int) -> str:
        if pid not in self.labels:
            self.labels[pid] = f"pool-{len(self.labels)}"
        return self.labels[pid]

    def sample(self) -> Sample | None:
        try:
            handled = int(self.progress.get(self.total_key) or 0)
            own, reaped = proc_stat(self.pid)
            rss = {"main": rss_kib(self.pid)}
            cpu = own + reaped
            for child in children_of(self.pid):
                try:
                    child_rss, (child_cpu, _) = rss_kib(child), proc_stat(child)
                except OSError:
                    continue  # ended between the listing and the read
                rss[self.label(child)] = child_rss
                cpu += child_cpu
        except OSError:
            return None  # the worker is gone
        return Sample(time.monotonic(), handled, rss, cpu)

    def run(self) -> None:
        while not self.stopping.is_set():
            sample = self.sample()
            if sample is not None:
                self.samples.append(sample)
            self.stopping.wait(self.interval)


@dataclass
class ProcessMemory:
    process: str
    pid: int
    rss_mib_at: dict[str, float]
    growth_10_to_100: float
    peak_mib: float


@dataclass
class Result:
    n: int
    depth: int
    seconds: float
    per_second: float
    tenths_per_second: list[float]
    last_tenth_vs_first: float
    cpu_seconds_per_1000_run: float
    cpu_seconds_per_1000_life: float
    handled_total: int
    distinct: int
    lost: int
    duplicates: int
    out_of_range: int
    left_in_queue: int
    queue_depth_min: int
    queue_depth_mean: float
    queue_empty_checks_while_filling: int
    log_warnings: int
    log_errors: int
    log_lines: list[str] = field(default_factory=list)
    gc_collected_per_event: float = float("nan")
    memory: list[ProcessMemory] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    tracemalloc: str = ""
    raw_drain_before: float = 0.0
    raw_drain_after: float = 0.0

    @property
    def vs_raw_drain(self) -> float:
        """Events/s against the mean of the raw drains before and after (nan without them)."""
        baseline = (self.raw_drain_before + self.raw_drain_after) / 2
        return self.per_second / baseline if baseline else float("nan")


def start_worker(
    endpoint: str, queue: str, ids: str, total: str, log: Path, trace: Path | None
) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        EVENTBUS_ENDPOINT_URL=endpoint,
        EVENTBUS_QUEUE_NAME=queue,
        EVENTBUS_REGION=REGION,
        # a bare queue on purpose (no topic, no dead-letter queue): the start-up checks warn instead of refusing
        EVENTBUS_STARTUP_CHECKS="warn",
        SOAK_IDS=ids,
        SOAK_TOTAL=total,
        PYTHONPATH=str(ROOT),
    )
    env["SOAK_GC"] = str(log.with_suffix(".gc.json"))
    if trace is not None:
        env["SOAK_TRACEMALLOC"] = str(trace)
    cmd = [sys.executable, "-m", "celery", "-A", "bench.soak_app", "worker", "-Q", queue, "-c", "2", "-P", "prefork"]
    cmd += ["--without-heartbeat", "--without-mingle", "--without-gossip", "-l", "warning"]
    with log.open("wb") as out:
        return subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True, stdout=out, stderr=subprocess.STDOUT)


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """Warm shutdown of the whole process group; killed if it has not ended within a minute."""
    try:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    except ProcessLookupError:
        worker.wait()


def at_mark(samples: list[Sample], count: int) -> Sample | None:
    """The first sample at which at least ``count`` events were handled."""
    return next((s for s in samples if s.handled >= count), None)


def memory_table(samples: list[Sample], labels: dict[int, str], n: int) -> list[ProcessMemory]:
    rows: list[ProcessMemory] = []
    for pid, label in labels.items():
        seen = [s.rss_kib[label] for s in samples if label in s.rss_kib]
        if not seen:
            continue
        at: dict[str, float] = {}
        for mark in MARKS:
            sample = at_mark([s for s in samples if label in s.rss_kib], max(1, int(n * mark)))
            at[f"{mark:.0%}"] = sample.rss_kib[label] / 1024 if sample else float("nan")
        growth = (at["100%"] - at["10%"]) / at["10%"] if at["10%"] else float("nan")
        rows.append(ProcessMemory(label, pid, at, growth, max(seen) / 1024))
    return rows


def raw_drain(args: argparse.Namespace, n: int) -> float:
    """The baseline: events/s of one thread draining a queue (ReceiveMessage(10) + DeleteMessageBatch, no Celery)
    filled the same way, on the machine as loaded at that moment."""
    sqs, _ = clients(args.endpoint)
    run = uuid.uuid4().hex[:10]
    url = sqs.create_queue(QueueName=f"soak-raw-{run}", Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    filler = Filler(args.endpoint, url, n, args.depth, args.chunk, args.fill_threads, run)
    try:
        filler.prefill()
        filler.start()
        handled = 0
        start = time.perf_counter()
        while handled < n:
            if filler.error is not None:
                raise RuntimeError("the filler failed") from filler.error
            received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            messages = received.get("Messages", [])
            if messages:
                entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
                sqs.delete_message_batch(QueueUrl=url, Entries=entries)
                handled += len(messages)
        return n / (time.perf_counter() - start)
    finally:
        filler.stopping.set()
        filler.join()
        sqs.delete_queue(QueueUrl=url)


def measure(args: argparse.Namespace) -> Result:
    sqs, _ = clients(args.endpoint)
    run = uuid.uuid4().hex[:10]
    queue = f"soak-{run}"
    url = sqs.create_queue(QueueName=queue, Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    store = redis.Redis.from_url(os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0"))
    ids, total = f"soak:{run}:ids", f"soak:{run}:total"
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    log, trace = workdir / "worker.log", (workdir / "tracemalloc.txt" if args.tracemalloc else None)
    filler = Filler(args.endpoint, url, args.n, args.depth, args.chunk, args.fill_threads, run)
    worker: subprocess.Popen[bytes] | None = None
    sampler: Sampler | None = None
    try:
        filler.prefill()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        worker = start_worker(args.endpoint, queue, ids, total, log, trace)
        filler.start()
        sampler = Sampler(worker.pid, store, total, args.interval)
        sampler.start()
        tenths = [max(1, args.n * k // 10) for k in range(1, 11)]
        reached: list[float] = []
        first = 0.0
        snapshots = iter(MARKS[0::2] if trace else ())  # tracemalloc: the reference at 10%, the comparison at 100%
        next_snapshot = next(snapshots, None)
        deadline = time.monotonic() + args.timeout
        idle_since: float | None = None
        while True:
            if filler.error is not None:
                raise RuntimeError("the filler failed") from filler.error
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited with {worker.returncode}; see {log}")
            done = int(store.get(total) or 0)
            now = time.perf_counter()
            if done and not first:
                first = now
            while len(reached) < len(tenths) and done >= tenths[len(reached)]:
                reached.append(now)
            if next_snapshot is not None and done >= args.n * next_snapshot:
                os.kill(worker.pid, signal.SIGUSR2)
                next_snapshot = next(snapshots, None)
            if done >= args.n:
                break
            # lost events: everything sent, the queue empty, and the count still short: stop waiting after 30 s
            if filler.sent >= args.n and not filler.is_alive() and left_in(sqs, url) == 0:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > 30:
                    break
            else:
                idle_since = None
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        last = reached[-1] if len(reached) == len(tenths) else time.perf_counter()
        time.sleep(args.interval * 1.5)  # the 100% sample
        # in flight counts too: wait until nothing is visible or held by the worker (its deletes flushed)
        empty_deadline = time.monotonic() + 120
        while left_in(sqs, url) and time.monotonic() < empty_deadline:
            time.sleep(0.5)
        if trace is not None:
            for _ in range(600):
                if trace.exists() and trace.stat().st_size:
                    break
                time.sleep(0.1)
        time.sleep(1.0)  # anything handled twice shows up in the counts
    finally:
        filler.stopping.set()
        if sampler is not None:
            sampler.stopping.set()
            sampler.join()
        if worker is not None:
            stop_worker(worker)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    left = left_in(sqs, url)
    counts = {int(k): int(v) for k, v in store.hgetall(ids).items()}
    store.delete(ids, total)
    sqs.delete_queue(QueueUrl=url)
    in_range = {k: v for k, v in counts.items() if 0 <= k < args.n}
    distinct, handled_total = len(in_range), sum(counts.values())
    samples = sampler.samples if sampler else []
    seconds = max(last - first, 1e-9)
    starts = [first, *reached[:-1]][: len(reached)]
    per_tenth = [
        (tenths[0] if k == 0 else tenths[k] - tenths[k - 1]) / max(e - s, 1e-9)
        for k, (s, e) in enumerate(zip(starts, reached, strict=True))
    ]
    run_samples = [s for s in samples if s.handled > 0]
    end_sample = at_mark(samples, args.n) or (samples[-1] if samples else None)
    cpu_run = 0.0
    if run_samples and end_sample is not None and end_sample.handled > run_samples[0].handled:
        cpu_run = (
            (end_sample.cpu_seconds - run_samples[0].cpu_seconds) * 1000 / (end_sample.handled - run_samples[0].handled)
        )
    cpu_life = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = log.read_text(errors="replace").splitlines()
    filling = [d for t, d in filler.depths]
    result = Result(
        n=args.n,
        depth=args.depth,
        seconds=seconds,
        per_second=(args.n - 1) / seconds,
        tenths_per_second=per_tenth,
        last_tenth_vs_first=per_tenth[-1] / per_tenth[0] if len(per_tenth) == 10 else float("nan"),
        cpu_seconds_per_1000_run=cpu_run,
        cpu_seconds_per_1000_life=cpu_life * 1000 / args.n,
        handled_total=handled_total,
        distinct=distinct,
        lost=args.n - distinct,
        duplicates=handled_total - distinct,
        out_of_range=len(counts) - len(in_range),
        left_in_queue=left,
        queue_depth_min=min(filling, default=0),
        queue_depth_mean=sum(filling) / len(filling) if filling else 0.0,
        queue_empty_checks_while_filling=sum(1 for d in filling if d == 0),
        log_warnings=sum(1 for line in lines if "WARNING" in line),
        log_errors=sum(1 for line in lines if "ERROR" in line or "CRITICAL" in line),
        log_lines=[line for line in lines if "WARNING" in line or "ERROR" in line or "CRITICAL" in line][:20],
        memory=memory_table(samples, sampler.labels if sampler else {}, args.n),
        samples=samples,
        tracemalloc=trace.read_text() if trace is not None and trace.exists() else "",
    )
    gc_file = log.with_suffix(".gc.json")
    if gc_file.exists():
        result.gc_collected_per_event = sum(json.loads(gc_file.read_text())["collected"]) / args.n
        gc_file.unlink()
    if result.log_errors:
        print("worker errors:", *[line for line in lines if "ERROR" in line][:5], sep="\n  ")
    log.unlink(missing_ok=True)
    if trace is not None:
        trace.unlink(missing_ok=True)
    workdir.rmdir()
    return result


def report(result: Result, args: argparse.Namespace) -> None:
    traced = ", main process traced by tracemalloc (not a measurement)" if args.tracemalloc else ""
    print(f"\nN={result.n}, queue kept ~{result.depth} deep, endpoint {args.endpoint}, prefork -c 2{traced}")
    print(
        f"{'process':<8} {'RSS@10% MiB':>12} {'RSS@50% MiB':>12} {'RSS@100% MiB':>13} {'10%->100%':>10} {'peak MiB':>9}"
    )
    for m in result.memory:
        at = m.rss_mib_at
        cols = f"{at['10%']:12.1f} {at['50%']:12.1f} {at['100%']:13.1f} {m.growth_10_to_100:+10.1%} {m.peak_mib:9.1f}"
        print(f"{m.process:<8} {cols}")
    tenths = " ".join(f"{r:.0f}" for r in result.tenths_per_second)
    drains = f"{result.raw_drain_before:.1f} before, {result.raw_drain_after:.1f} after"
    print(f"\nraw boto3 drain, events/s {drains} (one thread, same filler: the baseline)")
    print(f"events/s over the run   {result.per_second:9.1f}  ({result.seconds:.1f} s, first to last handled)")
    print(f"x raw drain (mean)      {result.vs_raw_drain:9.2f}")
    print(f"events/s per tenth      {tenths}")
    print(f"last tenth / first      {result.last_tenth_vs_first:9.2f}")
    print(f"CPU s/1000 (run)        {result.cpu_seconds_per_1000_run:9.2f}  (main + pool, first to last sample)")
    print(f"CPU s/1000 (life)       {result.cpu_seconds_per_1000_life:9.2f}  (start-up and shutdown included)")
    print(f"handled / distinct      {result.handled_total} / {result.distinct}")
    print(f"lost / duplicated       {result.lost} / {result.duplicates}   (ids out of range: {result.out_of_range})")
    print(f"left in queue           {result.left_in_queue}")
    depth = f"min {result.queue_depth_min}, mean {result.queue_depth_mean:.0f}"
    print(f"queue depth while fill  {depth}, empty at {result.queue_empty_checks_while_filling} checks")
    print(
        f"cyclic GC, main        {result.gc_collected_per_event:9.1f}  objects freed per event (the only way they go)"
    )
    print(f"worker log lines        {result.log_warnings} WARNING, {result.log_errors} ERROR")
    if result.tracemalloc:
        print("\ntracemalloc, worker main process, 10% -> 100%:\n" + result.tracemalloc)
    growths = [m.growth_10_to_100 for m in result.memory]
    ok_memory = bool(growths) and all(g <= 0.05 for g in growths)
    lost = "met" if not result.lost else "NOT met"
    print(f"targets: RSS growth <= 5% {'met' if ok_memory else 'NOT met'}; 0 lost {lost}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", default="http://127.0.0.1:4567")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--depth", type=int, default=3000, help="messages kept visible in the queue while filling")
    parser.add_argument("--chunk", type=int, default=500, help="messages sent whenever the queue is below --depth")
    parser.add_argument("--fill-threads", type=int, default=2)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between RSS samples")
    parser.add_argument("--timeout", type=float, default=3600.0, help="give up waiting for the events after this")
    parser.add_argument(
        "--baseline-n", type=int, default=5000, help="events of the raw drains before and after (0: none)"
    )
    parser.add_argument("--tracemalloc", action="store_true", help="trace the worker's main process (diagnosis)")
    args = parser.parse_args(argv)
    baseline_n = min(args.n, args.baseline_n)
    before = raw_drain(args, baseline_n) if baseline_n else 0.0
    result = measure(args)
    result.raw_drain_before = before
    result.raw_drain_after = raw_drain(args, baseline_n) if baseline_n else 0.0
    report(result, args)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"soak-{time.strftime('%Y%m%d-%H%M%S')}{'-tracemalloc' if args.tracemalloc else ''}.json"
    path.write_text(json.dumps({**asdict(result), "vs_raw_drain": result.vs_raw_drain}, indent=2))
    print(f"\nwritten {path.relative_to(ROOT)}")
    return 0 if not result.lost else 1


if __name__ == "__main__":
    raise SystemExit(main())
