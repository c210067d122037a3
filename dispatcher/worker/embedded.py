"""The embedded worker: what ``dispatcher serve`` runs beside the API when no broker is set.

:func:`start_embedded` installs a :class:`~dispatcher.pipeline.doorbell.LocalDoorbell` on the
runtime and starts two daemon threads: one drains due deliveries into the sender pool whenever
the doorbell rings, one runs the sweep. ``stop()`` on the returned handle ends both, finishes
in-flight sends and records every outcome.
"""

from __future__ import annotations

import logging
import threading

from dispatcher.pipeline.doorbell import LocalDoorbell
from dispatcher.runtime import Runtime
from dispatcher.worker.context import WorkerContext, build_context
from dispatcher.worker.leader import leader_lease
from dispatcher.worker.sweeper import Sweeper

log = logging.getLogger(__name__)


class EmbeddedWorker:
    """Handle of a running embedded worker and sweep."""

    def __init__(self, runtime: Runtime, context: WorkerContext) -> None:
        self.runtime = runtime
        self.context = context
        self.doorbell = LocalDoorbell()
        runtime.doorbell = self.doorbell
        self._consumer = threading.Thread(target=self._consume, name="embedded-worker", daemon=True)
        self._consumer.start()
        lease = leader_lease(runtime.engine, runtime.settings.worker_queue)
        self._sweeper = Sweeper(runtime, lease, name="embedded-sweep")

    def _consume(self) -> None:
        while self.doorbell.rings.get():
            self.context.drain(self.doorbell.flag, ask_for_help=self.doorbell.send)

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop the sweep and the consumer, then the sender pool (in-flight sends finish)."""
        self._sweeper.stop(timeout)
        self.context.begin_stop()
        self.doorbell.close()
        self._consumer.join(timeout)
        self.context.close(timeout)


def start_embedded(runtime: Runtime, context: WorkerContext | None = None) -> EmbeddedWorker:
    """Run a worker and the sweep inside this process, sharing ``runtime``; rings from now on
    reach that worker. ``context`` defaults to the real senders."""
    return EmbeddedWorker(runtime, context or build_context(runtime.settings, runtime))
