"""The embedded worker: what ``dispatcher serve`` runs beside the API when no broker is set.

:func:`start_embedded` installs a :class:`~dispatcher.worker.doorbells.LocalDoorbell` on the
runtime and starts two daemon threads: one claims rung batches and feeds the sender pool, one
runs the sweep. ``stop()`` on the returned handle ends both, finishes in-flight sends and
records every outcome.
"""

from __future__ import annotations

import logging
import queue
import threading

from sqlalchemy.exc import SQLAlchemyError

from dispatcher.runtime import Runtime
from dispatcher.scheduler import run_sweeper
from dispatcher.worker.context import WorkerContext, build_context
from dispatcher.worker.doorbells import LocalDoorbell

log = logging.getLogger(__name__)


class EmbeddedWorker:
    """Handle of a running embedded worker and sweep."""

    def __init__(self, runtime: Runtime, context: WorkerContext) -> None:
        self.runtime = runtime
        self.context = context
        self.doorbell = LocalDoorbell(runtime.settings)
        runtime.doorbell = self.doorbell
        self._stop = threading.Event()
        self._consumer = threading.Thread(target=self._consume, name="embedded-worker", daemon=True)
        self._sweeper = threading.Thread(
            target=run_sweeper, args=(runtime, self._stop), name="embedded-sweep", daemon=True
        )
        self._consumer.start()
        self._sweeper.start()

    def _consume(self) -> None:
        limit = self.runtime.settings.worker_batch_size
        while True:
            batch = self.doorbell.batches.get()
            if batch is None:
                return
            # coalesce whatever else is already waiting, up to one batch
            while len(batch) < limit:
                try:
                    more = self.doorbell.batches.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._deliver(batch)
                    return
                batch.extend(more)
            self._deliver(batch)

    def _deliver(self, batch: list[str]) -> None:
        try:
            self.context.deliver(batch)
        except SQLAlchemyError as exc:
            # nothing was claimed; the sweep rings these again
            log.warning("embedded worker: could not claim %d deliveries: %s", len(batch), exc)

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop the sweep and the consumer, then the sender pool (in-flight sends finish)."""
        self._stop.set()
        self.doorbell.close()
        self._sweeper.join(timeout)
        self._consumer.join(timeout)
        self.context.close(timeout)


def start_embedded(runtime: Runtime, context: WorkerContext | None = None) -> EmbeddedWorker:
    """Run a worker and the sweep inside this process, sharing ``runtime``; rings from now on
    reach that worker. ``context`` defaults to the real senders."""
    return EmbeddedWorker(runtime, context or build_context(runtime.settings, runtime))
