"""``SQSConsumer``: a Celery worker consumer that also takes raw events off the SQS queue.

Set ``app.conf.worker_consumer = "eventbus.celery.SQSConsumer"`` (or the older
``CELERYD_CONSUMER``). Each message is one of:

* a Celery task message (it has a ``task`` header): handled by Celery as usual;
* an event (an SNS notification, or a raw-delivery envelope) whose ``metadata.eventName`` a
  ``@subscribe`` task handles: rewritten into a Celery task message for that task and run in the
  worker pool like any task (concurrency, time limits, retries and signals all apply), deleted
  only after the task succeeded;
* an event nobody subscribed to: logged at INFO and deleted (a topic fans every event out to
  every queue, so most services ignore most events);
* anything else (malformed JSON, no ``metadata.eventName``, a body over the size limit, a payload
  that fails the handler's payload class): logged at WARNING and moved to the dead-letter queue.

A claim-checked event (a pointer to its body in S3, as AWS's extended clients write it) is fetched off the event loop
before anything else is decided, then judged as if it had come whole: :mod:`eventbus.celery.claims`.

Log lines name the queue, the SQS message id and the reason; never ``metadata.authorization``,
never a payload marked ``containsPersonalData``.

Metrics (``docs/metrics.md``): the router counts the events it drops or dead-letters itself, under the name of the
subscribed event, or ``_unsubscribed`` (nobody subscribes: the name is the message's, so not recorded),
``_invalid`` (no readable envelope, a refused task message) or ``_unknown`` (failed on its way to a task); each
event handed to a task carries the router's telemetry to that task's request, which counts its fate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from celery.worker import state as worker_state
from celery.worker.consumer import Consumer
from kombu.message import Message
from pydantic import SecretStr
from vine import promise

from eventbus.celery.acks import SqsAcknowledger, SqsSettlement, queue_name, queue_url, sqs_message_id
from eventbus.celery.claims import ClaimedMessages, ClaimFetcher
from eventbus.celery.fifo import GroupGate, message_group
from eventbus.celery.outcomes import NO_METRICS, Rejection, reason_kind
from eventbus.celery.redaction import REDACTOR, install
from eventbus.celery.subscribe import subscriptions_of
from eventbus.celery.task_messages import as_task_message, raw_body
from eventbus.celery.trust import check_task_message
from eventbus.core.claim_check import find_claim
from eventbus.core.dispatch import Decision, Fate, decide
from eventbus.core.envelope import MAX_MESSAGE_BYTES
from eventbus.core.metric_hooks import MetricHooks
from eventbus.core.redaction import sensitive_values_in_body, sensitive_values_of
from eventbus.core.registry import SubscriptionRegistry
from eventbus.errors import RefusedTask
from eventbus.ports import DeliverySettlement

logger = logging.getLogger("eventbus.consumer")


class EventRouter(ClaimedMessages):
    """Routes one raw SQS message: to Celery, to a subscribed task, to a drop, or to the DLQ.

    ``tasks`` (the worker's registered tasks) turns on the trust boundary for task messages that arrive on the queue
    (:mod:`eventbus.celery.trust`); ``signing_key`` is ``EVENTBUS_SIGNING_KEY``. ``withdraw`` takes back what Celery
    registered for a message whose hand-off to the pool failed, and says whether a pool process has it already.
    ``metrics`` receives the events' fates (the process's telemetry, fetched once by the consumer). ``claims``
    fetches claim-checked bodies (``None``: a pointer is judged as the message it is, and dead-lettered);
    ``keep_claimed`` leaves their objects in place. ``gate`` keeps FIFO message groups one message at a time (only
    with eventbus's transport, which reports each settlement to it).
    """

    def __init__(
        self,
        registry: SubscriptionRegistry,
        acknowledger: SqsAcknowledger,
        *,
        max_bytes: int = MAX_MESSAGE_BYTES,
        unsubscribed: Fate = Fate.DROP,
        tasks: Mapping[str, Any] | None = None,
        signing_key: SecretStr | None = None,
        withdraw: Callable[[Message], bool] | None = None,
        metrics: MetricHooks = NO_METRICS,
        claims: ClaimFetcher | None = None,
        keep_claimed: bool = False,
        gate: GroupGate | None = None,
    ) -> None:
        self.registry = registry
        self.acknowledger = acknowledger
        self.max_bytes = max_bytes
        self.unsubscribed = unsubscribed
        self.tasks = tasks
        self.signing_key = signing_key
        self.withdraw = withdraw
        self.metrics = metrics
        self.claims = claims
        self.keep_claimed = keep_claimed
        self.gate = gate

    def route(self, message: Message, run_task_message: Callable[[Message], Any]) -> Any:
        """Handle one message received by the worker.

        Never raises: whatever goes wrong while the message is turned into work (routing, decoding, the hand-off to
        the pool) settles this message alone (dead-lettered with the exception's type as reason) and the consumer
        goes on with the next one.
        """
        group = message_group(message) if self.gate is not None else None
        if group is None:
            return self._route(message, run_task_message)
        assert self.gate is not None
        # FIFO: one message of the group at a time, in order (celery/fifo.py)
        return self.gate.admit(group, message, partial(self._route, run_task_message=run_task_message))

    def _route(self, message: Message, run_task_message: Callable[[Message], Any]) -> Any:
        try:
            headers = message.headers
            if isinstance(headers, dict) and "task" in headers:
                return self._run_task_message(message, run_task_message)
            body = raw_body(message)
            claim = find_claim(body) if self.claims is not None else None
            if claim is None:
                return self._route_body(message, body, self.max_bytes, run_task_message)
            # fetched off the loop; routed when the body is here (the message stays held meanwhile)
            assert self.claims is not None
            hub = getattr(message.channel, "hub", None)
            self.claims.fetch(claim.pointer, hub, partial(self._on_fetched, message, claim, run_task_message))
            return None
        except Exception as exc:
            self._contain(message, exc)
            return None

    def _route_body(
        self, message: Message, body: str | bytes, max_bytes: int, run_task_message: Callable[[Message], Any]
    ) -> Any:
        # the payload is validated once, in the pool process that runs its handler (core/dispatch.py)
        decision = decide(
            body, self.registry, max_bytes=max_bytes, unsubscribed=self.unsubscribed, validate_payload=False
        )
        if decision.envelope is not None:
            secrets = sensitive_values_of(decision.envelope)
        else:
            secrets = sensitive_values_in_body(body, max_bytes)
        if not secrets:
            return self._settle(message, decision, run_task_message)
        # held while this message is dispatched or disposed of (and remembered a little longer, for the lines
        # written just after): debug lines and error texts of this call are redacted
        with REDACTOR.holding(secrets):
            return self._settle(message, decision, run_task_message)

    def _contain(self, message: Message, exc: Exception) -> None:
        """The last line of defence: a message that failed on its way to a task is taken back and dead-lettered."""
        taken_back = self.withdraw(message) if self.withdraw is not None else True
        logger.error(
            "eventbus: message %s from queue %s failed on its way to a task (%s)%s",
            sqs_message_id(message),
            queue_name(message),
            type(exc).__name__,
            "; dead-lettering it" if taken_back and not message.acknowledged else "",
            exc_info=True,
        )
        if taken_back and not message.acknowledged:
            self.acknowledger.dead_letter(message, f"handoff-failed: {type(exc).__name__}")
            self.metrics.event_settled(
                event_name="_unknown", queue=queue_name(message), outcome="dead-lettered", reason="handoff-failed"
            )

    def _run_task_message(self, message: Message, run_task_message: Callable[[Message], Any]) -> Any:
        if self.tasks is not None:
            try:
                check_task_message(message, self.tasks, self.signing_key)
            except RefusedTask as refused:
                self._dead_letter(message, str(refused), "_invalid", reason_kind(str(refused)))
                return None
        # a failed task (a retried event's last attempt included) is never deleted, whatever the queue's redrive
        message.reject_log_error = Rejection(self.acknowledger, message, self.metrics)  # type: ignore[method-assign]
        return run_task_message(message)

    def _settle(self, message: Message, decision: Decision, run_task_message: Callable[[Message], Any]) -> Any:
        if decision.fate is Fate.DISPATCH:
            as_task_message(message, decision)
            message.reject_log_error = Rejection(self.acknowledger, message, self.metrics)  # type: ignore[method-assign]
            return run_task_message(message)
        queue = queue_name(message)
        if decision.fate is Fate.DROP:
            logger.info(
                "eventbus: dropped message %s from queue %s: %s", sqs_message_id(message), queue, decision.reason
            )
            self.acknowledger.ack(message)
            # only events nobody subscribes to are dropped: their names come from the message, not the registry
            self.metrics.event_settled(event_name="_unsubscribed", queue=queue, outcome="dropped")
            return None
        if decision.subscription is not None:
            event_name, kind = decision.subscription.event_name, reason_kind(decision.reason)
        elif decision.envelope is not None:
            event_name, kind = "_unsubscribed", "unsubscribed"
        else:
            event_name, kind = "_invalid", reason_kind(decision.reason)
        self._dead_letter(message, decision.reason, event_name, kind)
        return None

    def _dead_letter(self, message: Message, reason: str, event_name: str, kind: str) -> None:
        queue = queue_name(message)
        logger.warning("eventbus: dead-lettering message %s from queue %s: %s", sqs_message_id(message), queue, reason)
        self.acknowledger.dead_letter(message, reason)
        self.metrics.event_settled(event_name=event_name, queue=queue, outcome="dead-lettered", reason=kind)


class SQSConsumer(Consumer):  # type: ignore[misc]
    """Celery's consumer, plus raw events from SNS/SQS routed to ``@subscribe`` tasks.

    Reads the process's container settings (the ones :func:`eventbus.celery.configure` read):
    ``EVENTBUS_MAX_MESSAGE_BYTES``, ``EVENTBUS_UNSUBSCRIBED``, ``EVENTBUS_SIGNING_KEY``; refuses to start on wiring
    that would misbehave silently (:func:`eventbus.container.check_wiring`).
    """

    def build_registry(self) -> SubscriptionRegistry:
        """The event-name registry from the app's ``@subscribe`` tasks (raises on duplicates)."""
        return SubscriptionRegistry(subscriptions_of(self.app.tasks.values()))

    def create_task_handler(self, promise: Any = promise) -> Callable[[Message], Any]:
        """Wrap Celery's task handler with the event router."""
        install()
        run_task_message = super().create_task_handler(promise)
        channel = self._eventbus_channel()
        if channel is not None:
            channel.in_progress = _running
        registry = self.build_registry()
        logger.info(
            "eventbus: consuming events %s",
            ", ".join(f"{name} -> {sub.handler}" for name, sub in sorted(registry.items())) or "(none subscribed)",
        )
        from eventbus.celery.tasks import CeleryTaskWithCallback
        from eventbus.container import check_wiring, get_container

        container = get_container()
        settings = container.settings()
        check_wiring(container, [t.orm for t in self.app.tasks.values() if isinstance(t, CeleryTaskWithCallback)])
        signing_key = settings.signing_key
        logger.info(
            "eventbus: task messages on the queue run %s",
            "when signed with EVENTBUS_SIGNING_KEY"
            if signing_key is not None
            else "only as retries of event tasks (no EVENTBUS_SIGNING_KEY: other task messages are dead-lettered)",
        )
        self._eventbus_acknowledger = SqsAcknowledger()
        gate = None
        if channel is not None:
            acknowledger = self._eventbus_acknowledger
            queues = channel.sqs_queues if isinstance(channel, SqsSettlement) else None

            def timeout_of(message: Message) -> int:
                return queues.visibility_timeout(queue_name(message), queue_url(message)) if queues else 30

            gate = self._eventbus_gate = GroupGate(acknowledger.release, acknowledger.release_later, timeout_of)
            channel.on_settled = gate.settled
        router = EventRouter(
            registry,
            self._eventbus_acknowledger,
            max_bytes=settings.max_message_bytes,
            unsubscribed=Fate(settings.unsubscribed),
            tasks=self.app.tasks,
            signing_key=signing_key,
            withdraw=self._withdraw,
            metrics=container.telemetry(),
            claims=ClaimFetcher(container.payload_store, settings.large_payload_max_bytes),
            keep_claimed=settings.large_payload_keep,
            gate=gate,
        )

        def on_message(message: Message) -> Any:
            return router.route(message, run_task_message)

        return on_message

    def close(self) -> None:
        """Shutdown begins (warm or cold): hand back prefetched messages no pool process has taken.

        The worker calls this first, before it closes the pool, which drops the requests waiting for a pool process
        (on AMQP, closing the channel returns them; on SQS they would stay invisible until their visibility
        timeout). They are made visible again now (visibility 0), so another worker takes them at once, while
        running tasks finish and are acknowledged as usual. Whatever else is still held when the channel closes
        (ETA tasks, requests that never reached the pool) is released then.
        """
        self._hand_back_unstarted("shutdown")

    def on_close(self) -> None:
        """The connection is closing (shutdown, or lost): hand back what never started, then Celery's clean-up."""
        self._hand_back_unstarted("connection close")
        super().on_close()

    def _hand_back_unstarted(self, why: str) -> None:
        channel = self._eventbus_channel()
        if channel is None:
            return
        channel.draining = True  # the event loop stops polling sockets: later calls are sent synchronously
        acknowledger = getattr(self, "_eventbus_acknowledger", None)
        if acknowledger is not None:  # dead-letter copies on their way: settle them before anything is released
            acknowledger.wait_for_copies(timeout=5.0)
        gate: GroupGate | None = getattr(self, "_eventbus_gate", None)
        released = (gate.close() if gate is not None else 0) + self._release_unstarted(channel)
        if released:
            logger.info("eventbus: %s: released %d prefetched message(s) that had not started", why, released)

    def _eventbus_channel(self) -> DeliverySettlement | None:
        """The consuming channel when it is eventbus's transport channel (a :class:`DeliverySettlement`), else None."""
        channel = getattr(self.task_consumer, "channel", None)
        return channel if isinstance(channel, DeliverySettlement) else None

    def _release_unstarted(self, channel: DeliverySettlement) -> int:
        """Release the messages of requests waiting for a pool process; they never started, so none runs twice."""
        waiting: list[Any] = []
        # prefork with the event loop queues requests for a busy pool on the worker's semaphore...
        semaphore = getattr(self.controller, "semaphore", None)
        waiters = getattr(semaphore, "_waiting", None)
        if waiters:
            for waiter in list(waiters):
                request = waiter[1][0] if len(waiter) > 1 and waiter[1] else None
                if self._is_sqs_request(request):
                    waiters.remove(waiter)
                    waiting.append(request)
        # ...and, without put-locks, hands them to the pool, which keeps jobs no child has taken in its outbound
        # buffer (a written job goes to an idle child, so it is about to run: those are left alone)
        outbound = getattr(getattr(self.pool, "_pool", None), "outbound_buffer", None)
        if outbound:
            for job in [job for job in list(outbound) if getattr(job, "_write_to", None) is None]:
                request = worker_state.requests.get(job.correlation_id)
                if self._is_sqs_request(request):
                    outbound.remove(job)
                    job.discard()
                    waiting.append(request)
        for request in waiting:
            worker_state.reserved_requests.discard(request)
            worker_state.requests.pop(request.id, None)
            channel.release(request.message.delivery_tag)
        if waiting:
            channel.flush()
        return len(waiting)

    def _withdraw(self, message: Message) -> bool:
        """Undo what Celery registered for ``message`` when its hand-off to the pool raised; False if a pool process
        has taken it (then the task runs and settles the message itself).

        Celery's strategy reserves the request, takes a slot of the worker's semaphore and creates the pool job
        before the job is serialized for a pool process; an exception there would leave the slot taken for good (a
        ``-c 1`` worker would stop) and the request reserved. Pinned by ``tests/unit/test_celery_internals.py``.
        """
        task_id = message.headers.get("id") if isinstance(message.headers, dict) else None
        request = worker_state.requests.get(task_id) if isinstance(task_id, str) else None
        if request is None or getattr(request, "message", None) is not message:
            return True
        cache = getattr(getattr(self.pool, "_pool", None), "_cache", None) or {}
        for number, job in list(cache.items()):
            if getattr(job, "correlation_id", None) != task_id:
                continue
            if getattr(job, "_write_to", None) is not None or getattr(job, "_worker_pid", None):
                return False
            cache.pop(number, None)
            semaphore = getattr(self.controller, "semaphore", None)
            if semaphore is not None:
                semaphore.release()
        worker_state.requests.pop(task_id, None)
        worker_state.reserved_requests.discard(request)
        worker_state.active_requests.discard(request)
        return True

    @staticmethod
    def _is_sqs_request(request: Any) -> bool:
        message = getattr(request, "message", None)
        return message is not None and "sqs_message" in getattr(message, "delivery_info", {})


def _running(delivery_tag: str) -> bool:
    """Whether a pool process is running the task of this delivery (Celery's active requests)."""
    return any(
        getattr(request.message, "delivery_tag", None) == delivery_tag for request in list(worker_state.active_requests)
    )
