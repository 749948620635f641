"""Figures of the fault-injection tests, and the table of docs/reliability.md rendered from them.

Each reliability test calls :func:`record_figures`; the lines go to ``build/reliability.jsonl`` (or
``$EVENTBUS_TEST_REPORT``). ``python -m tests.reliability_report`` prints the table of the last run of each test.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REPORT = Path(os.environ.get("EVENTBUS_TEST_REPORT", ROOT / "build" / "reliability.jsonl"))

PROMISES = {
    1: "Crash safety",
    2: "Visibility heartbeat",
    3: "Graceful shutdown",
    4: "Idempotent consumer",
    5: "Transactional outbox",
    6: "Poison and hostile input",
    7: "Secrets",
    8: "SQS outage",
    9: "Trust boundary",
    10: "Countdown and ETA tasks",
}


def record_figures(promise: int, test: str, **figures: Any) -> None:
    """Append one test's figures (events sent, handled, duplicates, lost, and anything else measured)."""
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    line = {"promise": promise, "test": test, "at": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()), **figures}
    with REPORT.open("a") as out:
        out.write(json.dumps(line) + "\n")


def render(path: Path = REPORT) -> str:
    """The markdown table: one row per test, its newest figures."""
    latest: dict[str, dict[str, Any]] = {}
    for row in (json.loads(text) for text in path.read_text().splitlines() if text.strip()):
        latest[row["test"]] = row
    lines = [
        "| # | promise | test | sent | handled | duplicates | lost | other figures |",
        "|---|---|---|---|---|---|---|---|",
    ]
    fixed = {"promise", "test", "at", "sent", "handled", "duplicates", "lost"}
    # the column says "lost": an event neither handled nor dead-lettered on purpose
    for row in sorted(latest.values(), key=lambda r: (r["promise"], r["test"])):
        other = ", ".join(f"{key}={value}" for key, value in row.items() if key not in fixed)
        cells = [str(row.get(key, "-")) for key in ("sent", "handled", "duplicates", "lost")]
        name = PROMISES[row["promise"]]
        lines.append(f"| {row['promise']} | {name} | `{row['test']}` | {' | '.join(cells)} | {other} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(Path(sys.argv[1]) if len(sys.argv) > 1 else REPORT))
