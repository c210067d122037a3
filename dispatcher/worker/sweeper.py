"""The sweep on a timer: what every ``dispatcher worker`` process, ``dispatcher scheduler``
and the embedded server run.

:func:`run_sweeper` sweeps (:func:`dispatcher.pipeline.sweep.sweep`) every
``settings.sweep_interval`` seconds, at once again while a sweep finds a full batch, and prunes
the delivery log every ``settings.retention_interval`` seconds, until stopped. With a
:mod:`leader lease <dispatcher.worker.leader>`, it does so only while it holds the lease, so
of the many processes that run it exactly one sweeps at a time, and another takes over at its
next tick when that one is gone. A database error is logged and the next tick tries again:
the sweep must outlive an outage.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.exc import SQLAlchemyError

from dispatcher.pipeline.sweep import prune_expired, sweep
from dispatcher.runtime import Runtime
from dispatcher.worker.leader import LeaderLease

log = logging.getLogger(__name__)


def run_sweeper(runtime: Runtime, stop: threading.Event, lease: LeaderLease | None = None) -> None:
    """Sweep and prune on ``runtime`` until ``stop`` is set (see the module docstring)."""
    settings = runtime.settings
    next_prune = time.monotonic()
    log.info("scheduler started: sweeping every %g s", settings.sweep_interval)
    try:
        while not stop.is_set():
            if lease is not None and not lease.hold():
                stop.wait(settings.sweep_interval)
                continue
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + settings.retention_interval
                try:
                    prune_expired(runtime.sessions, settings)
                except SQLAlchemyError as exc:
                    log.warning("retention failed, retrying later: %s", type(exc).__name__)
            try:
                count = sweep(runtime.sessions, settings, runtime.doorbell)
            except SQLAlchemyError as exc:
                log.warning("sweep failed, retrying next tick: %s", type(exc).__name__)
                count = 0
            if count:
                log.debug("sweep rang %d deliveries", count)
            if count < settings.sweep_batch_limit:
                stop.wait(settings.sweep_interval)
    finally:
        if lease is not None:
            lease.release()


class Sweeper:
    """:func:`run_sweeper` on a daemon thread, under ``lease``."""

    def __init__(self, runtime: Runtime, lease: LeaderLease | None, name: str = "sweeper") -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=run_sweeper, args=(runtime, self._stop, lease), name=name, daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self._thread.join(timeout)


__all__ = ["Sweeper", "run_sweeper"]
