"""The broker bell: how a process without a worker of its own (the API with a broker, the
command line, a Python producer) rings the workers.

A Celery *client* app, which has no tasks, sends the drain task by name
(:data:`~dispatcher.worker.app.TASK_NAME`); only ``dispatcher worker`` builds the app that
runs it. Celery is imported when a broker is configured, not before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dispatcher.config import Settings
from dispatcher.pipeline.doorbell import BrokerDoorbell, Doorbell, SilentDoorbell, ring_flag

TASK_NAME = "dispatcher.drain"


def doorbell_for(settings: Settings) -> Doorbell:
    """The doorbell of a process that hands work to ``dispatcher worker`` processes: through
    the broker when one is configured, nobody otherwise (the embedded worker installs its
    own, and the serving process's sweep finds what others wrote)."""
    if not settings.broker_url:
        return SilentDoorbell()
    return BrokerDoorbell(ring_flag(settings), sender(client_app(settings)))


def client_app(settings: Settings) -> Any:
    """A Celery app on ``settings.broker_url`` that only sends (no task, no worker signals)."""
    from celery import Celery

    app = Celery("dispatcher", broker=settings.broker_url or "memory://", set_as_current=False)
    configure(app, settings)
    return app


def configure(app: Any, settings: Settings) -> None:
    """The settings every dispatcher Celery app shares, chosen for at-least-once delivery:
    acknowledged after the task ran (``task_acks_late``, ``task_reject_on_worker_lost``), one
    message per process at a time, JSON only, no result backend. A worker sends task events
    (what Flower and ``celery events`` show) unless ``settings.worker_task_events`` is off."""
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=settings.worker_queue,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=settings.worker_task_events,
        task_send_sent_event=False,
    )


def sender(app: Any) -> Callable[[], None]:
    """Sends one drain message through ``app``; OSError when the broker cannot be reached."""
    from kombu.exceptions import OperationalError

    def send() -> None:
        try:
            app.send_task(TASK_NAME)
        except OperationalError as exc:
            raise ConnectionError(str(exc)) from exc

    return send
