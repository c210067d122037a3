"""The recorder thread of a sender pool: it writes delivery outcomes in batches.

Outcomes are :meth:`OutcomeRecorder.put` from any thread. The thread calls the pool's
``record`` (:func:`dispatcher.pipeline.record.record`) once per ``settings.record_batch_size``
outcomes or ``settings.record_interval`` seconds. When the database cannot be reached the
batch is kept, with what arrives meanwhile (at most ``settings.record_backlog_max`` outcomes;
the oldest beyond are dropped and their leases run out), and written when it is back, trying
again after :data:`RETRY_FIRST` seconds and doubling up to :data:`RETRY_MOST`. What the pool
must know it is told through three callbacks: ``paused`` (the database is away, or back),
``written`` (a batch was recorded, with its summary) and ``forget`` (so many outcomes are no
longer waiting to be recorded, written or dropped).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from sqlalchemy.exc import SQLAlchemyError

from dispatcher.config import Settings
from dispatcher.db import is_connection_error
from dispatcher.pipeline.attempt import Outcome
from dispatcher.pipeline.record import RecordSummary

log = logging.getLogger(__name__)

# Writes a batch of outcomes; a summary with notices makes the pool ring for them.
Record = Callable[[Sequence[Outcome]], RecordSummary | None]

# How long the recorder waits before it tries again to reach the database, at first and at
# most (doubling in between).
RETRY_FIRST, RETRY_MOST = 0.1, 2.0


class OutcomeRecorder:
    """One recorder thread (see the module docstring), started at once. :meth:`finish` ends
    it once everything put before is recorded, or at the deadline given."""

    def __init__(
        self,
        settings: Settings,
        record: Record,
        *,
        paused: Callable[[bool], None],
        written: Callable[[list[Outcome], RecordSummary | None], None],
        forget: Callable[[int], None],
    ) -> None:
        self._settings = settings
        self._record = record
        self._paused = paused
        self._written = written
        self._forget = forget
        self._outcomes: queue.SimpleQueue[Outcome | None] = queue.SimpleQueue()
        self._stop_by: float | None = None  # when finish() gives up recording
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def put(self, outcome: Outcome) -> None:
        self._outcomes.put(outcome)

    def finish(self, give_up_at: float | None = None, timeout: float | None = None) -> None:
        """Record what was put and end the thread, waiting for it ``timeout`` seconds at most.
        What cannot be recorded by ``give_up_at`` (``time.monotonic()``) is forgotten: its
        leases run out."""
        self._stop_by = give_up_at
        self._outcomes.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        settings = self._settings
        backlog: deque[Outcome] = deque()
        finished = failing = False
        pause = RETRY_FIRST
        while True:
            if finished and not backlog:
                return
            if not backlog:
                first = self._outcomes.get()
                if first is None:
                    return
                backlog.append(first)
                finished = self._take(backlog, settings.record_interval, fill=True)
            elif failing:
                # The database is away: wait a little, keeping what comes meanwhile.
                finished = self._take(backlog, pause, fill=False) or finished
            elif not finished:
                finished = self._take(backlog, 0.0, fill=True)
            size = min(len(backlog), settings.record_batch_size)
            batch = [backlog.popleft() for _ in range(size)]
            if self._write(batch):
                failing, pause = False, RETRY_FIRST
                continue
            backlog.extendleft(reversed(batch))
            failing, pause = True, min(pause * 2, RETRY_MOST)
            self._trim(backlog)
            if finished and self._stop_by is not None and time.monotonic() >= self._stop_by:
                log.warning(
                    "sender pool: %d outcomes not recorded at stop; their leases will run out",
                    len(backlog),
                )
                self._forget(len(backlog))
                return

    def _take(self, backlog: deque[Outcome], wait: float, *, fill: bool) -> bool:
        """Move the outcomes that arrive within ``wait`` seconds into ``backlog`` (with
        ``fill``, no more than a batch); True when the end of the queue (stop) was reached."""
        deadline = time.monotonic() + wait
        while not (fill and len(backlog) >= self._settings.record_batch_size):
            try:
                item = self._outcomes.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                return False
            if item is None:
                return True
            backlog.append(item)
        return False

    def _write(self, batch: list[Outcome]) -> bool:
        """Record ``batch``; False (the batch is kept) when the database cannot be reached."""
        try:
            summary = self._record(batch)
        except SQLAlchemyError as exc:
            if is_connection_error(exc):
                self._paused(True)
                log.warning(
                    "could not record %d delivery outcomes, keeping them: %s",
                    len(batch),
                    type(exc).__name__,
                )
                return False
            # Not the database's absence: a defect. The claims are still held; when their
            # leases expire the sweep rings them again (at least once).
            log.exception("could not record %d delivery outcomes", len(batch))
            summary = None
        self._paused(False)
        self._written(batch, summary)
        self._forget(len(batch))
        return True

    def _trim(self, backlog: deque[Outcome]) -> None:
        """Keep at most ``record_backlog_max`` outcomes: drop the oldest beyond (their
        deliveries are sent again once their leases run out)."""
        excess = len(backlog) - self._settings.record_backlog_max
        if excess > 0:
            for _ in range(excess):
                backlog.popleft()
            log.warning("sender pool: dropped %d unrecorded outcomes over the limit", excess)
            self._forget(excess)


__all__ = ["OutcomeRecorder", "Record"]
