"""The Celery app of ``dispatcher worker``: one task, ``dispatcher.drain()``.

The broker is only a doorbell (see :mod:`dispatcher.pipeline.doorbell`): a message says "there
is due work" and the task drains it from the database, which decides what is due. Retries are
not Celery retries; their time lives in ``deliveries.next_attempt_at`` and the sweep rings.
The app's settings are those of :func:`dispatcher.worker.bell.configure`.

``dispatcher worker`` is the easy way to run it. Celery users may also run the app Celery's
way, ``celery -A dispatcher.worker worker`` (and ``inspect``, ``status``, ``purge``): the
package makes :data:`app` on first use, from the ``DISPATCHER_*`` settings.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from celery import Celery
from celery.signals import (
    setup_logging,
    worker_process_init,
    worker_process_shutdown,
    worker_shutdown,
    worker_shutting_down,
)

from dispatcher.config import Settings
from dispatcher.pipeline.doorbell import BrokerDoorbell, ring_flag
from dispatcher.worker.bell import TASK_NAME, configure, sender
from dispatcher.worker.context import WorkerContext, build_context

ContextFactory = Callable[[], WorkerContext]


class _ContextHolder:
    """Builds the process's :class:`WorkerContext` on first use: after a prefork child was
    forked, so no thread, connection or socket crosses a fork."""

    def __init__(self, factory: ContextFactory) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._context: WorkerContext | None = None

    def get(self) -> WorkerContext:
        with self._lock:
            if self._context is None:
                self._context = self._factory()
            return self._context

    def attach(self) -> None:
        """Follow this process's worker: build the context as soon as the pool has a process
        to build it in (the solo pool's own, each prefork child after its fork) rather than
        on the first task, which would wait for it; close it when the worker stops. Called
        by ``dispatcher worker`` only: a producer's app must not react to these signals."""
        worker_process_init.connect(self._build, weak=False)
        worker_shutting_down.connect(self._begin_stop, weak=False)
        worker_shutdown.connect(self.close, weak=False)
        worker_process_shutdown.connect(self.close, weak=False)

    def detach(self) -> None:
        worker_process_init.disconnect(self._build)
        worker_shutting_down.disconnect(self._begin_stop)
        worker_shutdown.disconnect(self.close)
        worker_process_shutdown.disconnect(self.close)

    def _build(self, **_signal: Any) -> None:
        self.get()

    def _begin_stop(self, **_signal: Any) -> None:
        """SIGTERM reached this process (the solo pool's; a prefork parent has no context):
        stop claiming at once, even in the middle of a drain."""
        with self._lock:
            context = self._context
        if context is not None:
            context.begin_stop()

    def close(self, **_signal: Any) -> None:
        with self._lock:
            context, self._context = self._context, None
        if context is not None:
            context.close()


def create_celery(settings: Settings, context_factory: ContextFactory | None = None) -> Celery:
    """A Celery app for ``settings.broker_url`` (``memory://`` when none is set).

    ``context_factory`` builds the per-process worker context (default: real senders on
    netguard's client); tests pass one with fake senders."""
    app = Celery("dispatcher", broker=settings.broker_url or "memory://", set_as_current=False)
    configure(app, settings)
    doorbell = BrokerDoorbell(ring_flag(settings), sender(app))
    holder = _ContextHolder(
        context_factory or (lambda: build_context(settings, doorbell=doorbell, sweep=True))
    )

    @app.task(name=TASK_NAME, ignore_result=True)  # type: ignore[untyped-decorator]
    def drain() -> int:
        return holder.get().drain(doorbell.flag, ask_for_help=doorbell.send)

    app.dispatcher_context = holder
    app.dispatcher_doorbell = doorbell
    return app


def worker_app(settings: Settings) -> Celery:
    """The app a worker process runs: :func:`create_celery` following this process's worker
    (see ``_ContextHolder.attach``), logging through :mod:`dispatcher.ops.logs`."""
    from dispatcher.ops.logs import configure_logging

    app = create_celery(settings)
    app.dispatcher_context.attach()
    # Our handler and secret filter instead of Celery's own logging set-up.
    setup_logging.connect(lambda **_: configure_logging(settings), weak=False)
    _log_celery_notices()
    return app


def _log_celery_notices() -> None:
    """Celery writes its shutdown notices (``worker: Warm shutdown (MainProcess)``) straight to
    the terminal's file descriptors; send them through logging, like every other line of the
    process, so they are formatted (one JSON object with JSON logs) and scrubbed."""
    from celery.apps import worker as celery_worker

    notices = logging.getLogger("celery.worker")

    def say(message: str, _stream: object = None) -> None:
        notices.warning("%s", message.strip())

    celery_worker.safe_say = say
