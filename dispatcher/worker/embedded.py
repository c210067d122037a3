"""The embedded worker: what ``dispatcher serve`` runs beside the API when no broker is set.

:func:`start_embedded` installs a :class:`~dispatcher.pipeline.doorbell.LocalDoorbell` on the
runtime and starts two daemon threads: one drains due deliveries into the sender pool whenever
the doorbell rings, one runs the sweep. ``stop()`` on the returned handle ends both, finishes
in-flight sends and records every outcome.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.exc import SQLAlchemyError

from dispatcher.pipeline.doorbell import LocalDoorbell
from dispatcher.runtime import Runtime
from dispatcher.worker.context import WorkerContext, build_context
from dispatcher.worker.sweeper import run_sweeper

log = logging.getLogger(__name__)


class EmbeddedWorker:
    """Handle of a running embedded worker and sweep."""

    def __init__(self, runtime: Runtime, context: WorkerContext) -> None:
        self.runtime = runtime
        self.context = context
        self.doorbell = LocalDoorbell()
        runtime.doorbell = self.doorbell
        self._stop = threading.Event()
        self._consumer = threading.Thread(target=self._consume, name="embedded-worker", daemon=True)
        self._sweeper = threading.Thread(
            target=run_sweeper, args=(runtime, self._stop), name="embedded-sweep", daemon=True
        )
        self._consumer.start()
        self._sweeper.start()

    def _consume(self) -> None:
        while self.doorbell.rings.get():
            try:
                self.context.drain(self.doorbell.flag)
            except SQLAlchemyError as exc:
                # what was not claimed stays due; the sweep rings again
                self.doorbell.flag.clear()
                log.warning("embedded worker: could not claim deliveries: %s", exc)

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
