"""What one worker process holds, built once per process (after a prefork fork)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx

from dispatcher.config import Settings
from dispatcher.pipeline.claim import claim_due
from dispatcher.pipeline.doorbell import Doorbell, RingFlag
from dispatcher.runtime import Runtime, create_runtime
from dispatcher.senders.base import Sender
from dispatcher.worker.pool import SenderPool


class WorkerContext:
    """A runtime, one sender registry (sharing one pooled HTTP transport) and one sender
    pool, which closes the transport when it stops."""

    def __init__(
        self,
        runtime: Runtime,
        registry: Mapping[str, Sender],
        http_transport: httpx.AsyncBaseTransport | None = None,
        *,
        owns_runtime: bool = False,
    ) -> None:
        self.runtime = runtime
        self.registry = registry
        self._owns_runtime = owns_runtime
        self.pool = SenderPool(
            runtime.sessions, runtime.settings, registry, http_transport=http_transport
        )

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
        batch ``ask_for_help`` rings other workers, so a backlog is drained by all of them."""
        settings = self.runtime.settings
        total = 0
        cleared = False
        while True:
            jobs = claim_due(self.runtime.sessions, settings, settings.worker_batch_size)
            if jobs:
                self.pool.submit(jobs)
                total += len(jobs)
            if len(jobs) == settings.worker_batch_size:
                if ask_for_help is not None:
                    ask_for_help()
            elif cleared:
                return total
            else:
                flag.clear()
                cleared = True

    def close(self, timeout: float | None = None) -> None:
        """Finish in-flight sends, hand back waiting ones, record everything, close the
        transport."""
        self.pool.stop(timeout)
        if self._owns_runtime:
            self.runtime.close()


def build_context(
    settings: Settings, runtime: Runtime | None = None, *, doorbell: Doorbell | None = None
) -> WorkerContext:
    """The production context: netguard's pooled transport and the senders' registry, on
    ``runtime`` or on a new one ringing ``doorbell`` (the worker's own Celery doorbell)."""
    from dispatcher.senders.registry import build_registry
    from dispatcher.senders.transport import make_http_transport

    owns_runtime = runtime is None
    runtime = runtime or create_runtime(settings, doorbell)
    http_transport = make_http_transport(settings)
    registry = build_registry(settings, http_transport)
    return WorkerContext(runtime, registry, http_transport, owns_runtime=owns_runtime)
