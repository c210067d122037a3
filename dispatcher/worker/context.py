"""What one worker process holds, built once per process (after a prefork fork): a runtime,
one sender registry sharing one pooled HTTP transport, one sender pool pacing rate-limited
deliveries with one limiter (shared through Redis when the broker is Redis), and a sweeper that
sweeps while this process holds the leader lease; the operator's notice targets synced with
the settings when it starts. And :meth:`WorkerContext.drain`, what the
worker does when rung."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

import httpx
from sqlalchemy.exc import SQLAlchemyError

from dispatcher.config import Settings
from dispatcher.pipeline.claim import claim_due
from dispatcher.pipeline.doorbell import Doorbell, RingFlag
from dispatcher.runtime import Runtime, create_runtime
from dispatcher.senders.base import Sender
from dispatcher.service.notices import sync_operator_notices
from dispatcher.worker.leader import leader_lease
from dispatcher.worker.limiter import RateLimiter, limiter_for
from dispatcher.worker.pool import SenderPool
from dispatcher.worker.sweeper import Sweeper

log = logging.getLogger(__name__)

# Seconds a stopping worker allows itself beyond HTTP_TIMEOUT (the longest an in-flight send
# can take) to hand back and record what it holds.
STOP_MARGIN = 3.0


class WorkerContext:
    """A runtime, one sender registry (sharing one pooled HTTP transport), one sender pool
    (which closes the transport and the ``limiter`` when it stops) and, with ``sweep``, a
    sweeper under the leader lease. Work the pool hands back with a delay rings
    ``runtime.doorbell`` when due."""

    def __init__(
        self,
        runtime: Runtime,
        registry: Mapping[str, Sender],
        http_transport: httpx.AsyncBaseTransport | None = None,
        *,
        owns_runtime: bool = False,
        sweep: bool = False,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.runtime = runtime
        self.registry = registry
        self._owns_runtime = owns_runtime
        self._stopping = threading.Event()
        self.pool = SenderPool(
            runtime.sessions,
            runtime.settings,
            registry,
            http_transport=http_transport,
            wake=self._wake,
            limiter=limiter,
        )
        try:
            sync_operator_notices(runtime.sessions, runtime.settings)
        except SQLAlchemyError as exc:
            log.warning(
                "could not sync the operator's notice targets (%s); they apply once a worker "
                "starts with the database reachable",
                type(exc).__name__,
            )
        self._sweeper: Sweeper | None = None
        if sweep:
            lease = leader_lease(runtime.engine, runtime.settings.worker_queue)
            self._sweeper = Sweeper(runtime, lease)

    def _wake(self) -> None:
        self.runtime.doorbell.send()

    def drain(self, flag: RingFlag, ask_for_help: Callable[[], None] | None = None) -> int:
        """Claim due deliveries in batches of ``settings.worker_batch_size`` and hand them to
        the sender pool until none is left; return how many were claimed.

        The first batch that comes back short clears ``flag``, and the drain ends with the
        next short batch: a delivery committed while the flag was set (its producer rang
        nobody) is due before that claim and is found by it, and one committed after the
        clear rings again (see :mod:`~dispatcher.pipeline.doorbell`). Keeping the flag set
        until then lets a burst of producers share one ring. Returns once the deliveries are
        queued, not sent: a worker that dies with them queued loses only its leases, and the
        sweep rings them again. Blocks while the pool is full (backpressure). After a full
        batch ``ask_for_help`` rings other workers, so a backlog is drained by all of them.

        A drain is short: it stops claiming when the worker is stopping, and after
        ``settings.drain_seconds`` it rings for a successor (``ask_for_help``) and returns, so
        that a worker told to stop is never held by a backlog. When the database cannot be
        reached it clears ``flag`` and returns: the next ring or sweep finds the work."""
        settings = self.runtime.settings
        ends = time.monotonic() + settings.drain_seconds
        total = 0
        cleared = False
        try:
            while True:
                if self._stopping.is_set():
                    # Let producers ring again, and another worker carry on.
                    flag.clear()
                    if ask_for_help is not None and total:
                        ask_for_help()
                    return total
                jobs = claim_due(self.runtime.sessions, settings, settings.worker_batch_size)
                if jobs:
                    self.pool.submit(jobs)
                    total += len(jobs)
                if len(jobs) == settings.worker_batch_size:
                    if ask_for_help is not None:
                        ask_for_help()
                    if time.monotonic() >= ends:
                        return total  # the help asked for continues the drain
                elif cleared:
                    return total
                else:
                    flag.clear()
                    cleared = True
        except SQLAlchemyError as exc:
            flag.clear()
            log.warning("drain stopped, the database failed: %s", type(exc).__name__)
            return total

    def begin_stop(self) -> None:
        """The worker is stopping: claim nothing more, hand back what waits in the pool."""
        self._stopping.set()
        self.pool.begin_stop()

    def close(self, timeout: float | None = None) -> None:
        """Stop the sweeper, finish in-flight sends, hand back waiting ones, record
        everything, close the transport; all within ``timeout`` seconds (by default
        ``HTTP_TIMEOUT`` plus :data:`STOP_MARGIN`: a worker whose database is gone still
        exits, leaving what it could not record to its leases)."""
        settings = self.runtime.settings
        if timeout is None:
            timeout = settings.http_timeout + STOP_MARGIN
        ends = time.monotonic() + timeout
        self._stopping.set()
        if self._sweeper is not None:
            self._sweeper.stop(max(ends - time.monotonic(), 0.0))
        self.pool.stop(max(ends - time.monotonic(), 0.0))
        if self._owns_runtime:
            self.runtime.close()


def build_context(
    settings: Settings,
    runtime: Runtime | None = None,
    *,
    doorbell: Doorbell | None = None,
    sweep: bool = False,
) -> WorkerContext:
    """The production context: the guarded pooled transport, the senders' registry and the
    limiter of ``settings`` (:func:`~dispatcher.worker.limiter.limiter_for`), on ``runtime`` or
    on a new one ringing ``doorbell`` (the worker's own Celery doorbell)."""
    from dispatcher.senders.registry import build_registry
    from dispatcher.senders.transport import make_http_transport

    owns_runtime = runtime is None
    runtime = runtime or create_runtime(settings, doorbell)
    http_transport = make_http_transport(settings)
    registry = build_registry(settings, http_transport)
    return WorkerContext(
        runtime,
        registry,
        http_transport,
        owns_runtime=owns_runtime,
        sweep=sweep,
        limiter=limiter_for(settings),
    )
