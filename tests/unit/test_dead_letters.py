"""The pure side of ``eventbus dlq``: decoding and masking dead letters, filters, the redrive journal, the redrive
attributes and the dead-letter queue names."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from eventbus.adapters.aws.dead_letters import dead_letter_name, redrive_attributes, source_name
from eventbus.cli_dlq import RedriveJournal
from eventbus.core.dead_letters import DeadLetter, LetterFilter, describe, render

NOW = datetime(2025, 1, 2, tzinfo=UTC)
TOKEN = "unit-planted-secret-token-123456"


def letter(body: str, reason: str = "", count: int | None = 3) -> DeadLetter:
    attributes = {"eventbus-reason": {"DataType": "String", "StringValue": reason}} if reason else {}
    return DeadLetter("m-1", body, attributes, count, NOW - timedelta(hours=2))


def body(event: str = "orderPlaced", personal: bool = False, **payload: object) -> str:
    metadata = {"eventName": event, "entityId": 7, "authorization": f"Bearer {TOKEN}", "eventId": "e-1"}
    return json.dumps({"metadata": {**metadata, "containsPersonalData": personal}, "payload": payload})


def test_describe_decodes_and_masks_the_authorization() -> None:
    view = describe(letter(body(amount=3), "handler-failed: x"), NOW)
    assert (view.event_name, view.entity_id, view.event_id, view.receive_count) == ("orderPlaced", "7", "e-1", 3)
    assert view.age_seconds == 7200
    assert view.reason == "handler-failed: x"
    assert view.size == len(body(amount=3))
    assert view.metadata["authorization"] == "***"
    assert view.payload == {"amount": 3}
    shown = render(view) + json.dumps(view.to_json())
    assert TOKEN not in shown
    assert "age 2.0h" in shown


def test_personal_payload_is_withheld_and_its_values_masked_in_the_reason() -> None:
    view = describe(letter(body(personal=True, email="bob.unit@example.com"), "bad: bob.unit@example.com"), NOW)
    assert view.payload == "<withheld: containsPersonalData>"
    assert "bob.unit@example.com" not in render(view) + json.dumps(view.to_json())


def test_a_body_that_is_no_envelope_is_shown_escaped_cut_and_masked() -> None:
    raw = 'x\n\x00"authorization": "Bearer ' + TOKEN + '"' + "y" * 200
    view = describe(letter(raw), NOW)
    assert not view.is_envelope
    assert view.problem == "malformed-json"
    assert "\\n" in view.preview
    assert "\\u0000" in view.preview
    assert f"({len(raw)} characters)" in view.preview
    assert TOKEN not in render(view)
    assert TOKEN[:10] not in view.preview
    json_secret = describe(letter(json.dumps({"metadata": {"authorization": TOKEN}})), NOW)
    assert json_secret.problem == "not-an-envelope"
    assert TOKEN not in json_secret.preview


def test_filters() -> None:
    placed = describe(letter(body(), "invalid-payload: amount"), NOW)
    moved_by_sqs = describe(letter(body("orderShipped")), NOW)
    not_envelope = describe(letter("nope"), NOW)
    assert LetterFilter.of().matches(not_envelope)
    assert not LetterFilter.of()
    assert LetterFilter.of(events=["orderPlaced"]).matches(placed)
    assert not LetterFilter.of(events=["orderPlaced"]).matches(not_envelope)
    assert LetterFilter.of(entities=["7"]).matches(placed)
    assert not LetterFilter.of(entities=["8"]).matches(placed)
    assert LetterFilter.of(reasons=["INVALID-payload"]).matches(placed)
    assert LetterFilter.of(reasons=["none"]).matches(moved_by_sqs)
    assert not LetterFilter.of(reasons=["none"]).matches(placed)
    assert LetterFilter.of(["a"], ["b"], ["c"]).describe() == "--event a --entity b --reason c"


def test_redrive_attributes_turn_the_reason_into_redriven_reason() -> None:
    dead = DeadLetter(
        "m",
        "{}",
        {
            "eventbus-reason": {"DataType": "String", "StringValue": "handler-failed"},
            "eventName": {"DataType": "String", "StringValue": "x", "StringListValues": [], "BinaryListValues": []},
        },
    )
    assert redrive_attributes(dead) == {
        "eventName": {"DataType": "String", "StringValue": "x"},
        "eventbus-redriven-reason": {"DataType": "String", "StringValue": "handler-failed"},
    }
    assert "eventbus-redriven-reason" not in redrive_attributes(dead, keep_reason=False)


def test_dead_letter_queue_names() -> None:
    assert dead_letter_name("q") == "q__dlq"
    assert dead_letter_name("q.fifo") == "q__dlq.fifo"
    assert source_name("q__dlq") == "q"
    assert source_name("q__dlq.fifo") == "q.fifo"
    assert source_name("q") is None
    assert source_name("__dlq") is None


def test_journal_keeps_only_unfinished_entries(tmp_path: Path) -> None:
    path = tmp_path / "j"
    journal = RedriveJournal(path)
    journal.record("sending", "a")
    journal.record("sent", "a", "new-a")
    journal.record("deleted", "a")
    journal.record("sending", "b")
    journal.record("sending", "c")
    journal.record("sent", "c", "new-c")
    journal.close()
    again = RedriveJournal(path)
    assert again.pending("sending") == ["b"]
    assert again.pending("sent") == ["c"]
    again.close(forget=["b", "c"])
    assert not path.exists()
