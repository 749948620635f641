"""``eventbus topology plan|apply|check``: argument parsing, exit codes and output, with an in-memory fake of the
``TopologyStore`` port; ``topology_for`` and ``load_app`` on a real Celery app (nothing sent, no SQS).

The CLI tests that pin the command's own behaviour replace ``plan``/``drift`` with canned results; the others run the
real model against the fake store.
"""

from __future__ import annotations

import dataclasses
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from eventbus.celery.subscribe import EventTask
from eventbus.celery.topology import handler_time_limits, load_app, topology_for
from eventbus.cli import main
from eventbus.cli_topology import EXIT_DRIFT, EXIT_ERROR, EXIT_OK, build_parser, run_topology
from eventbus.core.topology import (
    Change,
    ChangeKind,
    Deployed,
    Drift,
    DriftKind,
    QueueSpec,
    SubscriptionSpec,
    Topology,
)
from eventbus.errors import ConfigurationError, TransportError
from eventbus.ports import TopologyStore
from eventbus.settings import EventBusSettings

SPEC = f"{__name__}:app"
PLACED = "cliTopologyOrderPlaced"
SHIPPED = "cliTopologyOrderShipped"

# tasks bound to this app only (shared=False): other tests' apps do not see them
app = Celery("cli-topology-test", broker="memory://", set_as_current=False)
app.conf.task_time_limit = 45


@app.task(name="cli_topology.placed", base=EventTask, eventbus_event_name=PLACED, time_limit=120, shared=False)
def placed(**kwargs: Any) -> None:
    return None


@app.task(name="cli_topology.shipped", base=EventTask, eventbus_event_name=SHIPPED, shared=False)
def shipped(**kwargs: Any) -> None:
    return None


not_an_app = object()

EMPTY = Deployed(topics={}, queue=None, dead_letter_queue=None, subscriptions=())


class FakeStore(TopologyStore):
    """The port in memory: returns a canned deployment, records what it was asked to apply."""

    def __init__(self, deployed: Deployed = EMPTY, fail: Exception | None = None) -> None:
        self.deployed = deployed
        self.fail = fail
        self.applied: list[list[Change]] = []

    def read(self, topology: Topology) -> Deployed:
        if self.fail is not None:
            raise self.fail
        return self.deployed

    def apply(self, topology: Topology, changes: Sequence[Change]) -> None:
        self.applied.append(list(changes))


@pytest.fixture
def settings() -> EventBusSettings:
    return EventBusSettings(topic="orders", queue_name="prod__billing__queue", service="billing", environment="prod")


def run(argv: list[str], store: TopologyStore, settings: EventBusSettings) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_topology(argv, store=store, settings=settings, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


CHANGES = [
    Change(ChangeKind.CREATE_TOPIC, "orders"),
    Change(ChangeKind.SUBSCRIBE, "prod__billing__queue <- orders", {"filter": [PLACED]}),
]
DRIFTS = [Drift(DriftKind.RAW_DELIVERY, "orders: raw delivery is on, the code says off")]


TOPOLOGY = Topology(
    publishes_to=("orders",),
    queue=QueueSpec(
        "prod__billing__queue", "prod__billing__queue__dlq", 5, 150, 1024 * 1024, {"eventbus:service": "b"}
    ),
    subscriptions=(SubscriptionSpec("orders", raw_delivery=False, event_names=(PLACED, SHIPPED)),),
)


@pytest.fixture
def canned(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The app's topology, ``plan`` and ``drift`` replaced by canned answers the test sets; records the ``prune``
    each plan got. These tests pin the command's behaviour, not the model's."""
    state: dict[str, Any] = {"changes": CHANGES, "drift": DRIFTS, "prune": []}
    monkeypatch.setattr("eventbus.celery.topology.topology_for", lambda app, settings: TOPOLOGY)

    def fake_plan(topology: Topology, deployed: Deployed, *, prune: bool = False) -> list[Change]:
        state["prune"].append(prune)
        return list(state["changes"])

    monkeypatch.setattr("eventbus.cli_topology.plan", fake_plan)
    monkeypatch.setattr("eventbus.cli_topology.drift", lambda topology, deployed: list(state["drift"]))
    monkeypatch.setattr(Change, "__str__", lambda self: f"{self.kind.value} {self.resource}")
    return state


# -- argument parsing --------------------------------------------------------------------------------------------


def test_app_is_required_and_check_takes_no_prune(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    for argv in (["plan"], ["check", "-A", SPEC, "--prune"], ["deploy", "-A", SPEC], []):
        with pytest.raises(SystemExit) as exited:
            parser.parse_args(argv)
        assert exited.value.code == EXIT_ERROR
    args = parser.parse_args(["apply", "--app", SPEC, "--prune", "--json"])
    assert (args.command, args.app, args.prune, args.json) == ("apply", SPEC, True, True)
    assert parser.parse_args(["plan", "-A", SPEC]).prune is False


def test_the_eventbus_command_lists_topology(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "topology" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        main(["topology", "check", "--help"])
    assert exited.value.code == 0
    assert "-A APP, --app APP" in capsys.readouterr().out


# -- exit codes and output (canned plan and drift) ---------------------------------------------------------------


def test_plan_prints_the_changes_and_applies_nothing(canned: dict[str, Any], settings: EventBusSettings) -> None:
    store = FakeStore()
    code, out, _ = run(["plan", "-A", SPEC], store, settings)
    assert code == EXIT_OK
    assert store.applied == []
    assert "queue prod__billing__queue; publishes to orders" in out
    assert "create-topic orders" in out
    assert "subscribe prod__billing__queue <- orders" in out
    assert "2 changes planned" in out
    assert canned["prune"] == [False]


def test_plan_with_prune_passes_it_on(canned: dict[str, Any], settings: EventBusSettings) -> None:
    run(["plan", "-A", SPEC, "--prune"], FakeStore(), settings)
    run(["apply", "-A", SPEC, "--prune"], FakeStore(), settings)
    assert canned["prune"] == [True, True]


def test_plan_without_changes_says_so(canned: dict[str, Any], settings: EventBusSettings) -> None:
    canned["changes"] = []
    code, out, _ = run(["plan", "-A", SPEC], FakeStore(), settings)
    assert code == EXIT_OK
    assert "no changes" in out


def test_apply_makes_the_planned_changes_and_prints_them(canned: dict[str, Any], settings: EventBusSettings) -> None:
    store = FakeStore()
    code, out, _ = run(["apply", "-A", SPEC], store, settings)
    assert code == EXIT_OK
    assert store.applied == [CHANGES]
    assert "  create-topic orders" in out
    assert "2 changes applied" in out


def test_apply_without_changes_calls_nothing(canned: dict[str, Any], settings: EventBusSettings) -> None:
    canned["changes"] = []
    store = FakeStore()
    code, out, _ = run(["apply", "-A", SPEC], store, settings)
    assert (code, store.applied) == (EXIT_OK, [])
    assert "no changes" in out


def test_check_names_each_drift_and_exits_1(canned: dict[str, Any], settings: EventBusSettings) -> None:
    code, out, _ = run(["check", "-A", SPEC], FakeStore(), settings)
    assert code == EXIT_DRIFT
    assert "drift raw-delivery: orders: raw delivery is on, the code says off" in out
    assert "1 difference" in out


def test_check_without_drift_exits_0(canned: dict[str, Any], settings: EventBusSettings) -> None:
    canned["drift"] = []
    code, out, _ = run(["check", "-A", SPEC], FakeStore(), settings)
    assert code == EXIT_OK
    assert "no drift" in out


def test_json_output_is_one_document(canned: dict[str, Any], settings: EventBusSettings) -> None:
    code, out, _ = run(["plan", "-A", SPEC, "--json"], FakeStore(), settings)
    assert code == EXIT_OK
    document = json.loads(out)
    assert (document["command"], document["applied"], document["prune"]) == ("plan", False, False)
    assert document["changes"][1] == {
        "kind": "subscribe",
        "resource": "prod__billing__queue <- orders",
        "values": {"filter": [PLACED]},
        "text": "subscribe prod__billing__queue <- orders",
    }
    assert document["topology"]["queue"]["name"] == "prod__billing__queue"
    assert document["topology"]["publishes_to"] == ["orders"]

    code, out, _ = run(["check", "-A", SPEC, "--json"], FakeStore(), settings)
    assert code == EXIT_DRIFT
    assert json.loads(out)["drift"] == [{"kind": "raw-delivery", "detail": DRIFTS[0].detail}]


def test_warnings_go_to_stderr(
    canned: dict[str, Any], settings: EventBusSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    warned = dataclasses.replace(TOPOLOGY, warnings=("visibility is short",))
    monkeypatch.setattr("eventbus.celery.topology.topology_for", lambda app, settings: warned)
    code, out, err = run(["plan", "-A", SPEC, "--json"], FakeStore(), settings)
    assert code == EXIT_OK
    assert err == "warning: visibility is short\n"
    assert json.loads(out)["warnings"] == ["visibility is short"]


@pytest.mark.parametrize("command", ["plan", "apply", "check"])
def test_a_transport_error_is_one_line_and_exit_2(
    canned: dict[str, Any], command: str, settings: EventBusSettings
) -> None:
    store = FakeStore(fail=TransportError("sqs GetQueueUrl failed:\nAccessDenied"))
    code, out, err = run([command, "-A", SPEC], store, settings)
    assert code == EXIT_ERROR
    assert out == ""
    assert err == f"eventbus topology {command}: TransportError: sqs GetQueueUrl failed: AccessDenied\n"


def test_an_app_that_does_not_load_is_a_configuration_error(settings: EventBusSettings) -> None:
    code, _, err = run(["plan", "-A", "no_such_module_for_eventbus:app"], FakeStore(), settings)
    assert code == EXIT_ERROR
    assert err.startswith("eventbus topology plan: ConfigurationError: cannot load the Celery app")
    assert len(err.splitlines()) == 1


def test_invalid_settings_are_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    from eventbus.container import set_container

    monkeypatch.setenv("EVENTBUS_NO_SUCH_SETTING", "1")
    set_container(None)
    try:
        err = io.StringIO()
        code = run_topology(["check", "-A", SPEC], store=FakeStore(), stdout=io.StringIO(), stderr=err)
    finally:
        monkeypatch.delenv("EVENTBUS_NO_SUCH_SETTING")
        set_container(None)
    assert code == EXIT_ERROR
    line = err.getvalue()
    assert line.startswith("eventbus topology check: ConfigurationError: invalid eventbus settings:")
    assert "EVENTBUS_NO_SUCH_SETTING" in line
    assert len(line.splitlines()) == 1


# -- the app's topology ------------------------------------------------------------------------------------------


def test_load_app_resolves_like_celery_a() -> None:
    assert load_app(SPEC) is app
    assert load_app(__name__) is app  # the module's ``app`` attribute
    assert load_app(f"{__name__}.app") is app
    with pytest.raises(ConfigurationError, match="not a Celery app"):
        load_app(f"{__name__}:not_an_app")
    with pytest.raises(ConfigurationError, match="cannot load"):
        load_app(f"{__name__}:missing")


def test_load_app_imports_the_apps_task_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cli_topology_tasks_mod.py").write_text("IMPORTED = True\n")
    (tmp_path / "cli_topology_app_mod.py").write_text(
        "from celery import Celery\n"
        "app = Celery('included', broker='memory://', set_as_current=False, include=['cli_topology_tasks_mod'])\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        load_app("cli_topology_app_mod")
        assert "cli_topology_tasks_mod" in sys.modules
    finally:
        sys.modules.pop("cli_topology_tasks_mod", None)
        sys.modules.pop("cli_topology_app_mod", None)


def test_handler_time_limits_fall_back_to_the_apps() -> None:
    limits = dict(zip([t.name for t in (placed, shipped)], handler_time_limits(app, [placed, shipped]), strict=True))
    assert limits == {"cli_topology.placed": 120, "cli_topology.shipped": 45}
    assert max(limit or 0 for limit in handler_time_limits(app)) == 120


def test_topology_for_reads_the_subscribe_registry_and_settings(settings: EventBusSettings) -> None:
    topology = topology_for(app, settings)
    assert topology.publishes_to == ("orders",)
    assert topology.queue.name == "prod__billing__queue"
    assert topology.queue.max_receive_count == settings.max_receive_count
    assert topology.queue.tags == {"eventbus:service": "billing", "eventbus:environment": "prod"}
    (subscription,) = topology.subscriptions
    assert (subscription.topic, subscription.raw_delivery) == ("orders", False)
    assert {PLACED, SHIPPED} <= set(subscription.event_names or ())
    # a handler's 120 s time limit does not fit the default 30 s visibility: raised, or warned about
    assert topology.queue.visibility_timeout >= 120 or any("120" in warning for warning in topology.warnings)


def test_without_filter_policy_the_queue_takes_every_event(settings: EventBusSettings) -> None:
    topology = topology_for(app, settings.model_copy(update={"filter_policy": False}))
    assert [s.event_names for s in topology.subscriptions] == [None]


def test_a_topic_arn_names_the_topic(settings: EventBusSettings) -> None:
    arn = "arn:aws:sns:eu-west-2:111122223333:orders-v2"
    assert topology_for(app, settings.model_copy(update={"topic_arn": arn})).publishes_to == ("orders-v2",)


# -- the real model against the fake store -----------------------------------------------------------------------


def test_plan_of_an_empty_deployment_creates_everything(settings: EventBusSettings) -> None:
    code, out, _ = run(["plan", "-A", SPEC, "--json"], FakeStore(), settings)
    assert code == EXIT_OK
    kinds = {change["kind"] for change in json.loads(out)["changes"]}
    assert {"create-topic", "create-queue", "subscribe"} <= kinds


def test_check_of_an_empty_deployment_reports_the_missing_resources(settings: EventBusSettings) -> None:
    code, out, _ = run(["check", "-A", SPEC], FakeStore(), settings)
    assert code == EXIT_DRIFT
    assert "missing-topic" in out
    assert "missing-queue" in out


def test_the_emulator_takes_the_topic_and_queue_from_the_apps_settings_with_a(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from eventbus.emulator.cli import run_emulator

    with pytest.raises(SystemExit) as exited:
        run_emulator(["-A", SPEC, "--queue", "other"])  # refused before any server starts
    assert exited.value.code == EXIT_ERROR
    assert "EVENTBUS_QUEUE_NAME" in capsys.readouterr().err
