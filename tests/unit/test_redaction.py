"""Which values are secret, and the redactor that keeps them out of log records and texts."""

from __future__ import annotations

import json
import logging
import threading

import pytest

from eventbus.celery.redaction import REDACTOR, install, safe_kwargs_repr, secrets_of_kwargs
from eventbus.core.envelope import decode_message_body
from eventbus.core.redaction import Redactor, sensitive_values, sensitive_values_in_body, sensitive_values_of


def test_authorization_and_its_bare_token_are_secret() -> None:
    assert sensitive_values({"authorization": "Bearer abc.def.ghi"}, {"x": "visible"}) == {
        "Bearer abc.def.ghi",
        "abc.def.ghi",
    }


def test_empty_or_tiny_authorization_is_nothing_to_hide() -> None:
    assert sensitive_values({"authorization": ""}, {}) == set()
    assert sensitive_values({"authorization": "ab"}, {}) == set()


def test_personal_payloads_give_every_text_and_long_number() -> None:
    payload = {"name": "Jane Doe", "contact": {"emails": ["jane@example.com"], "phone": 447700900123}, "ok": True}
    payload |= {"age": 41, "code": "NO"}
    assert sensitive_values({"containsPersonalData": True}, payload) == {
        "Jane Doe",
        "jane@example.com",
        "447700900123",
    }


def test_payloads_not_marked_personal_are_not_secret() -> None:
    assert sensitive_values({"containsPersonalData": False}, {"name": "Jane Doe"}) == set()
    assert sensitive_values({"containsPersonalData": "yes"}, {"name": "Jane Doe"}) == set()


def test_values_of_a_decoded_envelope_and_of_an_invalid_body() -> None:
    body = json.dumps(
        {
            "metadata": {"eventName": "e", "authorization": "Bearer t0ken", "containsPersonalData": True},
            "payload": {"email": "jane@example.com"},
        }
    )
    expected = {"Bearer t0ken", "t0ken", "jane@example.com"}
    assert sensitive_values_of(decode_message_body(body)) == expected
    no_event_name = body.replace('"eventName": "e", ', "")
    assert sensitive_values_in_body(no_event_name, 10_000) == expected
    wrapped = json.dumps({"Type": "Notification", "Message": no_event_name})
    assert sensitive_values_in_body(wrapped, 10_000) == expected
    assert sensitive_values_in_body("{not json", 10_000) == set()
    assert sensitive_values_in_body(body, 10) == set()


def test_redactor_replaces_held_values_and_keeps_recent_ones_for_a_while() -> None:
    redactor = Redactor(recent=2)
    assert not redactor
    with redactor.holding({"s3cret-1"}):
        assert redactor.redact("token s3cret-1 here") == "token *** here"
    assert redactor.redact("late log s3cret-1") == "late log ***", "recent values stay redacted"
    redactor.remember({"other-1"})
    redactor.remember({"other-2"})
    assert redactor.redact("s3cret-1") == "s3cret-1", "evicted after two newer groups"
    assert redactor.redact("other-1 other-2") == "*** ***"


def test_a_value_held_twice_stays_until_both_are_released() -> None:
    redactor = Redactor(recent=0)
    with redactor.holding({"shared-v"}):
        with redactor.holding({"shared-v"}):
            pass
        assert redactor.redact("shared-v") == "***"
    assert redactor.redact("shared-v") == "shared-v"


def test_redactor_is_safe_across_threads() -> None:
    redactor = Redactor(recent=4)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(300):
                value = f"value-{n}-{i}"
                with redactor.holding({value}):
                    assert redactor.redact(f"x {value} y") == "x *** y"
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_installed_factory_scrubs_messages_arguments_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    install()
    logger = logging.getLogger("tests.redaction")
    with REDACTOR.holding({"Bearer zz-secret-zz"}), caplog.at_level(logging.INFO, logger="tests.redaction"):
        logger.info("calling with %s", "Bearer zz-secret-zz")
        try:
            raise ValueError("bad token Bearer zz-secret-zz")
        except ValueError:
            logger.exception("failed")
    text = caplog.text
    assert "zz-secret-zz" not in text
    assert "calling with ***" in text
    assert "ValueError: bad token ***" in text


def test_botocore_is_capped_at_info_in_workers() -> None:
    logging.getLogger("botocore").setLevel(logging.DEBUG)
    install()
    assert logging.getLogger("botocore").getEffectiveLevel() == logging.INFO


def test_kwargsrepr_of_an_event_task_hides_the_message_secrets() -> None:
    kwargs = {
        "payload": {"email": "jane@example.com", "n": 1},
        "metadata": {"eventName": "e", "authorization": "Bearer abcdef", "containsPersonalData": True},
    }
    assert secrets_of_kwargs(kwargs) == {"Bearer abcdef", "abcdef", "jane@example.com"}
    text = safe_kwargs_repr(kwargs)
    assert "jane@example.com" not in text
    assert "abcdef" not in text
    assert "'n': 1" in text
