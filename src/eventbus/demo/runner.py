"""``eventbus demo``: the emulator, a worker, the seed's events, bad input, and callback tasks, end to end."""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import Any

from eventbus.demo.seed import SEED_DO_GOOD, SEED_DO_NICE
from eventbus.demo.stack import LocalStack


def run_demo(argv: list[str] | None = None) -> int:
    """Run the demo; return 0 when every expected outcome was seen."""
    parser = argparse.ArgumentParser(prog="eventbus demo", description=__doc__)
    parser.add_argument("--port", type=int, default=4566, help="emulator port (0: any free port)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each outcome")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="eventbus-demo-") as tmp:
        database = f"sqlite:///{os.path.join(tmp, 'demo.sqlite3')}"
        env = {"EVENTBUS_DATABASE_URL": database, "EVENTBUS_SERVICE": "demo"}
        with LocalStack("eventbus.demo.app", port=args.port, env=env) as stack:
            ok = _seed_events(stack, args.timeout) & _callback_tasks(stack, args.timeout)
            _show_dead_letters(stack)
    print("== demo " + ("finished: every outcome seen" if ok else "FAILED: see MISSING above"), flush=True)
    return 0 if ok else 1


def _seed_events(stack: LocalStack, timeout: float) -> bool:
    from eventbus.demo.app import plain_celery_task

    sns = stack.aws("sns")
    print("== publishing the seed's doGood and doNice events to SNS", flush=True)
    sns.publish(TopicArn=stack.topic_arn, Message=SEED_DO_GOOD)
    sns.publish(TopicArn=stack.topic_arn, Message=SEED_DO_NICE)
    print("== publishing an event nobody subscribed to, and a malformed message", flush=True)
    sns.publish(TopicArn=stack.topic_arn, Message=SEED_DO_GOOD.replace('"doGood"', '"nobodyListens"'))
    sns.publish(TopicArn=stack.topic_arn, Message='{"metadata": {"eventName": ')
    print("== sending a plain Celery task on the same queue", flush=True)
    plain_celery_task.delay(21)
    checks = ["doGood handled", "doNice handled", "plain Celery task ran", "dropped message", "dead-lettering message"]
    return all([stack.wait_for(text, timeout=timeout) for text in checks])


def _callback_tasks(stack: LocalStack, timeout: float) -> bool:
    from eventbus.demo import app

    app.create_schema()
    good, bad = app.add_order("book", "ok"), app.add_order("piano", "fail")
    print(f"== ship_order.delay(order_id={good!r}) and ship_order.delay(order_id={bad!r}) (the second one fails)")
    app.ship_order.delay(order_id=good)
    app.ship_order.delay(order_id=bad)
    checks = ["success callback: orderShipped", "failure callback: orderShippingFailed"]
    return all([stack.wait_for(text, timeout=timeout) for text in checks])


def _show_dead_letters(stack: LocalStack) -> None:
    dead = stack.aws("sqs").receive_message(
        QueueUrl=stack.dead_letter_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )
    for message in dead.get("Messages", []):
        attributes: dict[str, Any] = dict(message.get("MessageAttributes", {}))
        reason = attributes.get("eventbus-reason", {}).get("StringValue")
        source = attributes.get("eventbus-source-message-id", {}).get("StringValue")
        print(f"== dead-letter queue holds message {source}: reason {reason!r}", flush=True)
