"""The per-process sender pool: an event loop that sends claimed deliveries and a recorder
thread that writes their outcomes in batches. Threads and lifecycle only; which job goes next
is :class:`~dispatcher.worker.lanes.Lanes`' decision.

The loop runs on its own thread and holds up to ``settings.worker_send_concurrency`` sends at
once, all sharing one sender registry (and so one pooled HTTP transport); e-mail, whose
library blocks, is sent on the loop's executor threads. Jobs wait in one lane per target, at
most ``settings.worker_per_host_concurrency`` of a target in flight. When a target's lane is
full, :meth:`SenderPool.submit` waits for room while the target answers, and hands further
jobs back to pending for ``settings.target_busy_delay`` seconds when it is stuck (no attempt
is counted). A job whose lease would run out before its send could time out is handed back
too, rather than risk a second sender.

:meth:`SenderPool.submit` is called from other threads and applies backpressure: it blocks
while ``settings.worker_max_queued`` jobs wait. Outcomes go to the recorder thread, which
calls :func:`dispatcher.pipeline.record.record` once per ``settings.record_batch_size``
outcomes or ``settings.record_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from dispatcher.config import Settings
from dispatcher.models import utcnow
from dispatcher.ops.logs import DELIVERY_ID
from dispatcher.pipeline.attempt import Outcome, attempt, released
from dispatcher.pipeline.claim import Job
from dispatcher.pipeline.record import record
from dispatcher.senders.base import Sender
from dispatcher.worker.lanes import Lanes

log = logging.getLogger(__name__)

Recorder = Callable[[Sequence[Outcome]], object]


class SenderPool:
    """Send jobs concurrently on an event loop and record their outcomes in batches.

    Thread-safe. Call :meth:`stop` to finish: in-flight sends complete, waiting jobs are
    handed back to pending, and every outcome is recorded before it returns."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        registry: Mapping[str, Sender],
        *,
        recorder: Recorder | None = None,
        http_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._record: Recorder = recorder or (lambda outcomes: record(sessions, outcomes, settings))
        self._transport = http_transport
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._lanes = Lanes(
            settings.worker_per_host_concurrency,
            settings.worker_per_host_queued,
            settings.target_busy_delay,
        )
        self._unrecorded = 0
        self._stopping = False
        self._outcomes: queue.SimpleQueue[Outcome | None] = queue.SimpleQueue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        # smtplib blocks: e-mail is sent on these threads, at most one target's worth at once
        self._loop.set_default_executor(
            ThreadPoolExecutor(settings.worker_per_host_concurrency, "blocking-send")
        )
        self._sender = threading.Thread(target=self._run_loop, name="sender-loop", daemon=True)
        self._recorder = threading.Thread(target=self._record_loop, name="recorder", daemon=True)
        self._sender.start()
        self._recorder.start()

    # -- producers' side ----------------------------------------------------------------------

    def submit(self, jobs: Sequence[Job]) -> None:
        """Queue ``jobs``; blocks while the pool already holds ``worker_max_queued`` jobs."""
        settings = self._settings
        overflow: list[Job] = []
        lanes = self._lanes
        with self._lock:
            while lanes.queued >= settings.worker_max_queued and not self._stopping:
                self._space.wait()
            for job in jobs:
                key = self._target_key(job)
                # A target that answers keeps its lane moving: wait for room rather than hand
                # work back. A stuck one (see Lanes.is_stuck) gets it back.
                while (
                    lanes.is_full(key)
                    and not self._stopping
                    and not lanes.is_stuck(key, time.monotonic())
                ):
                    self._space.wait(settings.target_busy_delay)
                if self._stopping or not lanes.add(key, job, time.monotonic()):
                    overflow.append(job)
            self._unrecorded += len(jobs)
        try:
            self._loop.call_soon_threadsafe(self._pump)
        except RuntimeError:
            # The pool has stopped and its loop is closed: what was queued here is never sent,
            # and its leases run out for the sweep to ring it again.
            log.warning("sender pool: %d deliveries submitted after stop", len(jobs))
        for job in overflow:
            self._emit(released(job, settings.target_busy_delay))

    def _target_key(self, job: Job) -> str:
        sender = self._registry.get(job.method)
        if sender is None:
            return ""
        try:
            return f"{job.method}:{sender.target_key(job.config)}"
        except Exception:  # a broken config is reported by the attempt, not here
            return f"{job.method}:"

    # -- senders (on the event loop) ----------------------------------------------------------

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def _pump(self) -> None:
        """Start a send for each ready target while fewer than ``worker_send_concurrency``
        run; once stopping, hand every waiting job back instead."""
        # a job must be able to time out before its lease ends, or a second sender may start
        deadline = utcnow() + timedelta(seconds=self._settings.http_timeout + 1.0)
        limit = self._settings.worker_send_concurrency
        starts: list[tuple[str, Job]] = []
        handed_back: list[Job] = []
        lanes = self._lanes
        with self._lock:
            while lanes.busy < limit or self._stopping:
                taken = lanes.next()
                if taken is None:
                    break
                key, job = taken
                if self._stopping or job.lease_until < deadline:
                    handed_back.append(job)
                    lanes.drop(key)
                    continue
                lanes.begin(key)
                starts.append((key, job))
            if starts or handed_back:
                self._space.notify_all()
        for job in handed_back:
            self._emit(released(job, 0.0))
        for key, job in starts:
            task = self._loop.create_task(self._send(key, job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, key: str, job: Job) -> None:
        DELIVERY_ID.set(job.delivery_id)  # this task's lines name its delivery
        try:
            outcome = await attempt(job, self._registry)
        finally:
            with self._lock:
                self._lanes.finish(key, time.monotonic())
        self._emit(outcome)
        self._pump()

    async def _finish(self) -> None:
        """Let in-flight sends complete, then close the HTTP transport."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._transport is not None:
            await self._transport.aclose()

    # -- recorder -----------------------------------------------------------------------------

    def _emit(self, outcome: Outcome) -> None:
        self._outcomes.put(outcome)

    def _record_loop(self) -> None:
        settings = self._settings
        finished = False
        while not finished:
            first = self._outcomes.get()
            if first is None:
                break
            batch = [first]
            deadline = time.monotonic() + settings.record_interval
            while len(batch) < settings.record_batch_size:
                remaining = deadline - time.monotonic()
                try:
                    item = self._outcomes.get(timeout=max(remaining, 0.001))
                except queue.Empty:
                    break
                if item is None:
                    finished = True
                    break
                batch.append(item)
            self._write(batch)

    def _write(self, batch: list[Outcome]) -> None:
        try:
            self._record(batch)
        except SQLAlchemyError:
            # The claims are still held; when their leases expire the sweep rings them again,
            # so these deliveries are retried, never lost (at least once).
            log.exception("could not record %d delivery outcomes", len(batch))
        with self._lock:
            self._unrecorded -= len(batch)
            if self._unrecorded <= 0:
                self._idle.notify_all()

    # -- lifecycle ----------------------------------------------------------------------------

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every submitted job has been sent and recorded; False on timeout."""
        with self._lock:
            return self._idle.wait_for(lambda: self._unrecorded <= 0, timeout)

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting work, hand waiting jobs back, finish in-flight sends, close the
        HTTP transport, record all."""
        with self._lock:
            self._stopping = True
            self._space.notify_all()
        if self._sender.is_alive():
            self._loop.call_soon_threadsafe(self._pump)
            finished = asyncio.run_coroutine_threadsafe(self._finish(), self._loop)
            try:
                finished.result(timeout)
            except (TimeoutError, concurrent.futures.TimeoutError):
                log.warning("sender pool: sends still in flight after %s s", timeout)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._sender.join(timeout)
        if not self._sender.is_alive() and not self._loop.is_closed():
            self._loop.close()  # and with it the e-mail threads
        self._outcomes.put(None)
        self._recorder.join(timeout)
