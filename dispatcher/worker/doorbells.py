"""Doorbells that reach workers: through the broker, or to a worker in this process.

Both coalesce: ids rung within ``settings.doorbell_linger`` seconds travel together, in
messages of at most ``settings.worker_batch_size`` ids, so a producer emitting many small
events does not cost one broker message (and one claim) per delivery. A ring lost in the
linger window (the process died) is made good by the sweep.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence

from kombu.exceptions import OperationalError

from dispatcher.config import Settings

log = logging.getLogger(__name__)

TASK_NAME = "dispatcher.deliver_batch"


class _Coalescer:
    """Collects ids; hands batches to ``send`` when full or ``linger`` seconds after the first
    id of a batch arrived. ``send`` runs on the ringing thread (full batches) or on one
    daemon flusher thread (the rest)."""

    def __init__(
        self,
        send: Callable[[list[str]], None],
        batch_size: int,
        linger: float,
        close_timeout: float = 0.0,
    ) -> None:
        self._send = send
        self._close_timeout = close_timeout
        self._batch_size = max(batch_size, 1)
        self._linger = linger
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self._flusher: threading.Thread | None = None

    def ring(self, delivery_ids: Sequence[str]) -> None:
        full: list[list[str]] = []
        with self._lock:
            self._pending.extend(delivery_ids)
            while len(self._pending) >= self._batch_size:
                full.append(self._pending[: self._batch_size])
                del self._pending[: self._batch_size]
            if self._pending and (self._linger <= 0 or self._closed):
                full.append(self._pending)
                self._pending = []
            elif self._pending:
                if self._flusher is None:
                    self._flusher = threading.Thread(
                        target=self._flush_loop, name="doorbell", daemon=True
                    )
                    self._flusher.start()
                self._wake.notify()
        for batch in full:
            self._send(batch)

    def _flush_loop(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._closed:
                    self._wake.wait()
                if self._closed and not self._pending:
                    return
            # let more ids arrive before sending a partial batch
            threading.Event().wait(self._linger)
            self.flush()

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        if batch:
            self._send(batch)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._wake.notify()
            flusher = self._flusher
        # Let a batch the flusher already took reach the broker before the process exits.
        if flusher is not None and flusher is not threading.current_thread():
            flusher.join(timeout=self._close_timeout)
        self.flush()


class CeleryDoorbell:
    """Rings ``dispatcher.deliver_batch`` through ``celery_app``'s broker."""

    def __init__(self, celery_app: object, settings: Settings) -> None:
        self._app = celery_app
        self._coalescer = _Coalescer(
            self._send,
            settings.worker_batch_size,
            settings.doorbell_linger,
            close_timeout=settings.http_timeout,
        )

    def ring(self, delivery_ids: Sequence[str]) -> None:
        self._coalescer.ring(delivery_ids)

    def _send(self, batch: list[str]) -> None:
        try:
            self._app.send_task(TASK_NAME, args=[batch])  # type: ignore[attr-defined]
        except (OperationalError, OSError) as exc:
            # The rows are committed; the sweep rings them once the broker is back.
            log.warning(
                "doorbell: broker unreachable (%s); the sweep will ring %d deliveries",
                type(exc).__name__,
                len(batch),
            )

    def flush(self) -> None:
        """Send what is waiting for the linger window now."""
        self._coalescer.flush()

    def close(self) -> None:
        self._coalescer.close()


class LocalDoorbell:
    """Hands id batches to a worker thread of this process (the embedded server)."""

    def __init__(self, settings: Settings) -> None:
        self.batches: queue.SimpleQueue[list[str] | None] = queue.SimpleQueue()
        self._coalescer = _Coalescer(self.batches.put, settings.worker_batch_size, 0.0)

    def ring(self, delivery_ids: Sequence[str]) -> None:
        self._coalescer.ring(delivery_ids)

    def close(self) -> None:
        self.batches.put(None)
