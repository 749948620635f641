"""The private parts of Celery, kombu and billiard that eventbus's consumer and transport rely on.

Each is named here so that an upgrade that moves one fails this test loudly instead of silently turning a safety
mechanism off (the hand-off clean-up, the per-message isolation of a receive, the dead-letter copy off the loop,
the shutdown release, task signing).
"""

from __future__ import annotations

import inspect
import threading

from billiard.pool import ApplyResult
from celery.app.amqp import AMQP
from celery.concurrency import asynpool
from celery.worker import state as worker_state
from kombu.asynchronous.hub import Hub
from kombu.asynchronous.semaphore import LaxBoundedSemaphore
from kombu.message import Message
from kombu.transport import SQS
from kombu.transport.virtual import QoS


def test_worker_state_that_a_withdrawn_hand_off_cleans_up() -> None:
    assert callable(worker_state.requests.pop)
    assert callable(worker_state.reserved_requests.discard)
    assert callable(worker_state.active_requests.discard)


def test_pool_jobs_carry_the_task_id_and_are_cached_until_done() -> None:
    assert "correlation_id" in inspect.signature(ApplyResult).parameters
    source = inspect.getsource(ApplyResult.__init__)
    assert "cache[self._job] = self" in source
    assert "self._worker_pid = None" in source
    # the asynchronous pool serializes a job in _quick_put, after the job is cached; a written job has _write_to
    pool_source = inspect.getsource(asynpool.AsynPool)
    assert "self._quick_put = send_job" in pool_source
    assert "job._write_to = proc" in pool_source


def test_the_worker_semaphore_can_be_released_and_lists_its_waiters() -> None:
    semaphore = LaxBoundedSemaphore(1)
    semaphore.acquire(lambda: None)
    assert semaphore.value == 0
    semaphore.release()
    assert semaphore.value == 1
    assert hasattr(semaphore, "_waiting")


def test_the_event_loop_accepts_callbacks_from_other_threads() -> None:
    hub = Hub()
    assert isinstance(hub._ready_lock, type(threading.Lock()))
    assert "threading.get_ident() != self._loop_thread" in inspect.getsource(Hub.call_soon)


def test_kombu_sqs_channel_hooks_the_transport_overrides() -> None:
    for name in ("_envelope_payload", "_on_messages_ready", "_message_to_python", "_prepare_json_payload"):
        assert callable(getattr(SQS.Channel, name)), name
    assert list(inspect.signature(SQS.Channel._on_messages_ready).parameters) == ["self", "queue", "qname", "messages"]
    qos_source = inspect.getsource(QoS.__init__)
    assert "self._delivered" in qos_source
    assert "self._dirty" in qos_source


def test_kombu_schedules_the_next_receive_where_the_transport_defers_it() -> None:
    # receiving.py overrides _loop1 (the next receive after a non-empty one waits for the pool hand-off)
    assert list(inspect.signature(SQS.Channel._loop1).parameters) == ["self", "queue", "messages_fetched"]
    assert "call_soon(self._schedule_queue" in inspect.getsource(SQS.Channel._loop1)


def test_task_messages_are_sent_through_a_replaceable_sender() -> None:
    assert "send_task_message" in vars(AMQP)
    assert hasattr(vars(AMQP)["send_task_message"], "__set__"), "an instance may replace it (install_signing)"


def test_a_decoded_message_body_is_cached_where_the_consumer_sets_it() -> None:
    # the consumer hands Celery the task message's decoded body in ``_decoded_cache`` (no second JSON decode): kombu
    # must read it there, and Celery's request must take its arguments from ``message.payload``
    assert "_decoded_cache" in inspect.getsource(Message.decode)
    assert "_decoded_cache" in inspect.getsource(Message.payload.fget)  # type: ignore[attr-defined]
    from celery.worker.request import Request

    assert "message.payload" in inspect.getsource(Request.__init__)
