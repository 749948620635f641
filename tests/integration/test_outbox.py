"""The transactional outbox in real workers (promise 5): SNS down while callback tasks complete, then back.

Each task publishes a "noticed" event inside its transaction and then acts; on success the callback task adds its
success event, on failure the transaction (notice included) rolls back and the failure event is written in a
transaction of its own. With SNS unreachable nothing can leave, so every event waits in the outbox table; when SNS
returns, the relay loop in the worker sends them: all of them, none twice, none of a rolled-back transaction.
Run on Django and on SQLAlchemy, both on PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.faults import OutageProxy
from tests.reliability_report import record_figures
from tests.support import ROOT, Spy, make_topology, start_worker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

SUCCEEDING = 50
FAILING = 10


@dataclass(frozen=True)
class Side:
    """One ORM's worker app, task, entity table and event names."""

    orm: str
    app: str
    task: str
    table: str
    noticed: str
    succeeded: str
    failed: str


DJANGO = Side(
    "django",
    "tests.django_project.celery_app",
    "tests.django_project.entities.tasks.announce_then_act",
    "entities_entity",
    "entityNoticed",
    "actionHappened",
    "actionHappeningFailed",
)
SQLALCHEMY = Side(
    "sqlalchemy",
    "tests.sqlalchemy_app",
    "tests.sqlalchemy_app.announce_then_act_gadget",
    "eventbus_test_gadgets",
    "gadgetNoticed",
    "gadgetActed",
    "gadgetActionFailed",
)


def prepare_database(side: Side, postgres_url: str) -> str:
    """Create the ORM's tables on PostgreSQL (in a subprocess: no ORM set-up leaks into this one); empty the outbox."""
    import psycopg

    if side.orm == "django":
        command = [sys.executable, "-m", "django", "migrate", "--database", "postgres", "-v", "0"]
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.django_project.settings", PYTHONPATH=str(ROOT))
    else:
        code = (
            "from tests.sqlalchemy_app import create_schema; create_schema();"
            "from sqlalchemy import create_engine; from eventbus.adapters.sqlalchemy.tables import metadata;"
            "import os; metadata.create_all(create_engine(os.environ['EVENTBUS_DATABASE_URL']))"
        )
        command = [sys.executable, "-c", code]
        env = dict(os.environ, EVENTBUS_DATABASE_URL=sqlalchemy_url(postgres_url), PYTHONPATH=str(ROOT))
    subprocess.run(command, env=env, check=True, cwd=ROOT)
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute("delete from eventbus_outbox")
    return postgres_url


def sqlalchemy_url(postgres_url: str) -> str:
    return postgres_url.replace("postgresql://", "postgresql+psycopg://")


def add_entities(side: Side, postgres_url: str, mode: str, count: int) -> list[str]:
    import psycopg

    ids = [str(uuid.uuid4()) for _ in range(count)]
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        for entity_id in ids:
            connection.execute(
                f"insert into {side.table} (id, name, mode, touched) values (%s, %s, %s, 0)",
                (entity_id, "outbox-test", mode),
            )
    return ids


def outbox_rows(postgres_url: str) -> int:
    import psycopg

    with psycopg.connect(postgres_url) as connection:
        row = connection.execute("select count(*) from eventbus_outbox").fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize("side", [DJANGO, SQLALCHEMY], ids=lambda s: s.orm)
def test_events_of_committed_work_survive_an_sns_outage_and_none_of_rolled_back_work_leaves(
    side: Side, sqs: Any, sns: Any, sns_sqs_endpoint: str, tmp_path: Path, postgres_url: str
) -> None:
    from celery import Celery

    from eventbus.celery import configure
    from eventbus.container import build_container, set_container
    from eventbus.settings import EventBusSettings

    prepare_database(side, postgres_url)
    good = add_entities(side, postgres_url, "ok", SUCCEEDING)
    bad = add_entities(side, postgres_url, "fail", FAILING)
    topology = make_topology(sns, sqs, f"outbox-{side.orm}-{uuid.uuid4().hex[:6]}", visibility=30)
    spy = Spy(sns, sqs, topology.topic_arn, f"{topology.queue_name}-spy")
    upstream = urlsplit(sns_sqs_endpoint).port
    assert upstream is not None
    env = {
        "EVENTBUS_OUTBOX": side.orm,
        "EVENTBUS_REPOSITORY": side.orm,
        "EVENTBUS_SNS_ENDPOINT_URL": "",  # set below, once the proxy has its port
        "EVENTBUS_OUTBOX_RELAY_INTERVAL": "0.5",
    }
    if side.orm == "django":
        env |= {"DJANGO_SETTINGS_MODULE": "tests.django_project.settings", "EVENTBUS_DJANGO_DATABASE": "postgres"}
    else:
        env |= {"EVENTBUS_DATABASE_URL": sqlalchemy_url(postgres_url)}
    with OutageProxy(upstream) as sns_endpoint:
        sns_endpoint.down()  # SNS is unreachable from the start; SQS (the tasks' queue) is not
        env["EVENTBUS_SNS_ENDPOINT_URL"] = sns_endpoint.url
        worker = start_worker(side.app, topology, sns_sqs_endpoint, tmp_path, env=env)
        try:
            sender = Celery("sender")
            configure(
                sender, build_container(EventBusSettings(endpoint_url=sns_sqs_endpoint, queue_name=topology.queue_name))
            )
            set_container(None)  # the sender's container served configure() only
            with sender.producer_or_acquire() as producer:
                for entity_id in good + bad:
                    sender.send_task(side.task, kwargs={side_arg(side): entity_id}, producer=producer)
            expected_rows = 2 * SUCCEEDING + FAILING
            wait_until(lambda: outbox_rows(postgres_url) >= expected_rows, timeout=120)
            time.sleep(1)
            stored = outbox_rows(postgres_url)
            assert spy.poll() == [], "nothing can reach SNS while it is down"
            sns_endpoint.up()
            restored = time.monotonic()
            wait_until(lambda: len(spy.poll()) >= expected_rows, timeout=60)
            delivered_after = time.monotonic() - restored
            time.sleep(3)  # anything sent twice would arrive now
            events = spy.poll()
            left = outbox_rows(postgres_url)
            log = worker.log()
        finally:
            worker.stop()

    def names_for(entity_id: str) -> list[str]:
        return sorted(e["metadata"]["eventName"] for e in events if e["metadata"]["entityId"] == entity_id)

    keys = [(e["metadata"]["eventName"], e["metadata"]["entityId"]) for e in events]
    duplicates = len(keys) - len(set(keys))
    rolled_back_leaked = [
        e for e in events if e["metadata"]["entityId"] in bad and e["metadata"]["eventName"] == side.noticed
    ]
    record_figures(
        5,
        f"SNS down, {SUCCEEDING}+{FAILING} callback tasks, SNS back ({side.orm}, PostgreSQL)",
        sent=expected_rows,
        handled=len(set(keys)),
        duplicates=duplicates,
        lost=expected_rows - len(set(keys)),
        stored_in_outbox_during_outage=stored,
        events_of_rolled_back_transactions=len(rolled_back_leaked),
        delivered_within_s_of_sns_return=round(delivered_after, 1),
        left_in_outbox=left,
    )
    assert stored == expected_rows, "every event of committed work waited in the outbox, nothing more"
    assert all(names_for(i) == sorted([side.noticed, side.succeeded]) for i in good), "each success: notice + success"
    assert all(names_for(i) == [side.failed] for i in bad), "each failure: its failure event, no notice"
    assert duplicates == 0
    assert rolled_back_leaked == []
    assert left == 0, "the outbox is empty once everything was sent"
    assert "outbox relay cannot send" in log, "the outage is logged"
    assert "outbox relay sending again" in log, "the recovery is logged"


def side_arg(side: Side) -> str:
    return "entity_id" if side.orm == "django" else "gadget_id"
