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
too, rather than risk a second sender. Whatever is handed back with a delay arranges its own
wake-up: once it is recorded, ``wake`` is called when it is due again (the worker rings
itself), so no hand-back waits for a sweep.

Deliveries with a rate limit wait in a lane of their bucket, so nothing else of their host
waits behind them. Before each send of such a lane the pool asks the ``limiter``; when the
budget says wait, the job goes back to the front of its lane and the lane is held until then
(no attempt is counted; the lane's jobs keep their order). Room in such a lane comes only at
its rate, so :meth:`SenderPool.submit` never waits for it: it keeps what the budget can send
within the jobs' leases and hands the rest back at once, due when their turn comes.

:meth:`SenderPool.submit` is called from other threads and applies backpressure: it blocks
while ``settings.worker_max_queued`` jobs wait. Outcomes go to the recorder thread
(:class:`~dispatcher.worker.recorder.OutcomeRecorder`), which writes them in batches and keeps
them while the database cannot be reached; no new send starts meanwhile, so an outage costs no
duplicate beyond what was in flight.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
from sqlalchemy.orm import Session, sessionmaker

from dispatcher.config import Settings
from dispatcher.models import utcnow
from dispatcher.ops.logs import DELIVERY_ID
from dispatcher.pipeline.attempt import Outcome, attempt, released
from dispatcher.pipeline.claim import Job
from dispatcher.pipeline.record import RecordSummary, record
from dispatcher.senders.base import Sender
from dispatcher.senders.ratelimit import RateLimit
from dispatcher.vocabulary import AttemptResult
from dispatcher.worker.lanes import Lanes
from dispatcher.worker.limiter import LocalRateLimiter, Pacer, RateLimiter
from dispatcher.worker.recorder import OutcomeRecorder, Record

log = logging.getLogger(__name__)

# A margin after a hand-back's due time before the pool rings for it; how many paced lanes'
# hand-back turns are remembered before those already past are forgotten.
WAKE_MARGIN = 0.05
MAX_TURNS = 4096


class SenderPool:
    """Send jobs concurrently on an event loop and record their outcomes in batches.

    Thread-safe. Call :meth:`stop` to finish: in-flight sends complete, waiting jobs are
    handed back to pending, and every outcome is recorded before it returns (within its
    timeout), and the HTTP transport and the limiter are closed. ``wake`` is called (on an
    executor thread) when work this pool handed back with a delay is due again. ``limiter``
    paces rate-limited deliveries (by default within this process)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        registry: Mapping[str, Sender],
        *,
        recorder: Record | None = None,
        http_transport: httpx.AsyncBaseTransport | None = None,
        wake: Callable[[], None] | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._pacer = Pacer(
            settings, registry, limiter if limiter is not None else LocalRateLimiter()
        )
        self._transport = http_transport
        self._wake = wake
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._lanes = Lanes(
            settings.worker_per_host_concurrency,
            settings.worker_per_host_queued,
            settings.target_stuck_after,
        )
        self._unrecorded = 0
        self._turns: dict[str, float] = {}  # per paced lane: when its last hand-back is due
        self._stopping = False
        self._paused = False  # the database cannot be reached: no new send starts
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake_at: float | None = None
        self._wake_handle: asyncio.TimerHandle | None = None
        self._loop = asyncio.new_event_loop()
        # smtplib blocks: e-mail is sent on these threads, at most one target's worth at once
        self._loop.set_default_executor(
            ThreadPoolExecutor(settings.worker_per_host_concurrency, "blocking-send")
        )
        self._sender = threading.Thread(target=self._run_loop, name="sender-loop", daemon=True)
        self._sender.start()
        self._recorder = OutcomeRecorder(
            settings,
            recorder or (lambda outcomes: record(sessions, outcomes, settings)),
            paused=self._set_paused,
            written=self._written,
            forget=self._forget,
        )

    # -- producers' side ----------------------------------------------------------------------

    def submit(self, jobs: Sequence[Job]) -> None:
        """Queue ``jobs``; blocks while the pool already holds ``worker_max_queued`` jobs.
        Once the pool is stopping, the jobs are handed back at once."""
        settings = self._settings
        overflow: list[tuple[Job, float]] = []
        lanes = self._lanes
        with self._lock:
            while lanes.queued >= settings.worker_max_queued and not self._stopping:
                self._space.wait()
            for job in jobs:
                key, limit = self._lane_of(job)
                if limit is not None:
                    delay = self._queue_paced(key, limit, job)
                    if delay is not None:
                        overflow.append((job, delay))
                    continue
                # A target that answers keeps its lane moving: wait for room rather than hand
                # work back. A stuck one (see Lanes.is_stuck) gets it back.
                while (
                    lanes.is_full(key)
                    and not self._stopping
                    and not lanes.is_stuck(key, time.monotonic())
                ):
                    self._poke()  # what waits must be started for room (or evidence) to come
                    self._space.wait(settings.target_busy_delay)
                if self._stopping or not lanes.add(key, job):
                    overflow.append((job, 0.0 if self._stopping else settings.target_busy_delay))
            self._unrecorded += len(jobs)
        if not self._poke():
            # The pool has stopped and its loop is closed: what was queued here is never sent,
            # and its leases run out for the sweep to ring it again.
            log.warning("sender pool: %d deliveries submitted after stop", len(jobs))
        for job, delay in overflow:
            self._emit(released(job, delay))

    def _queue_paced(self, key: str, limit: RateLimit, job: Job) -> float | None:
        """Under the lock: queue ``job`` in its paced lane (None), or say in how many seconds
        it is due when handed back. Room there comes only at its rate: none is waited for."""
        if self._stopping:
            return 0.0
        ahead = self._lanes.waiting(key)
        if self._pacer.keeps(job, limit, ahead, utcnow()) and self._lanes.add(key, job):
            return None
        # Each job handed back is due at its own turn, after the lane and after those handed
        # back before it: they come back one by one and in order, not all at once.
        now = time.monotonic()
        turn = max(ahead / limit.rate, self._turns.get(key, now) - now + 1.0 / limit.rate)
        self._turns[key] = now + turn
        if len(self._turns) > MAX_TURNS:
            self._turns = {k: t for k, t in self._turns.items() if t > now}
        return max(self._settings.target_busy_delay, turn)

    def _poke(self) -> bool:
        """Have the loop start what it can; False when the loop is closed."""
        try:
            self._loop.call_soon_threadsafe(self._pump)
        except RuntimeError:
            return False
        return True

    def _lane_of(self, job: Job) -> tuple[str, RateLimit | None]:
        """The lane of ``job`` (its target, or with a rate limit its target and bucket) and
        its rate limit."""
        key = self._target_key(job)
        limit = self._pacer.limit_of(job)
        return (key if limit is None else f"{key}/{limit.bucket}"), limit

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
        run (none while recording is paused), holding the lanes whose rate limit says wait;
        once stopping, hand every waiting job back."""
        # a job must be able to time out before its lease ends, or a second sender may start
        deadline = utcnow() + timedelta(seconds=self._settings.http_timeout + 1.0)
        limit = self._settings.worker_send_concurrency
        starts: list[tuple[str, float, Job]] = []
        handed_back: list[tuple[Job, float]] = []
        holds: list[tuple[str, float]] = []
        lanes = self._lanes
        with self._lock:
            if self._stopping:
                lanes.release_all()
            while self._stopping or (lanes.busy < limit and not self._paused):
                taken = lanes.next()
                if taken is None:
                    break
                key, job = taken
                if self._stopping or job.lease_until < deadline:
                    handed_back.append((job, 0.0))
                    lanes.drop(key)
                    continue
                wait = self._pacer.wait(job)
                if wait > 0 and job.lease_until - timedelta(seconds=wait) < deadline:
                    handed_back.append((job, wait))  # its turn comes after its lease
                    lanes.drop(key)
                    continue
                if wait > 0:
                    lanes.hold(key, job)
                    holds.append((key, wait))
                    continue
                starts.append((key, lanes.begin(key, time.monotonic()), job))
            if starts or handed_back:
                self._space.notify_all()
        for key, wait in holds:
            self._loop.call_later(wait, self._release, key)
        for job, delay in handed_back:
            self._emit(released(job, delay))
        for key, started, job in starts:
            task = self._loop.create_task(self._send(key, started, job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _release(self, key: str) -> None:
        """On the loop: the wait of a held lane is over; its next job asks again."""
        with self._lock:
            self._lanes.release(key)
        self._pump()

    async def _send(self, key: str, started: float, job: Job) -> None:
        DELIVERY_ID.set(job.delivery_id)  # this task's lines name its delivery
        try:
            outcome = await attempt(job, self._registry)
        finally:
            with self._lock:
                self._lanes.finish(key, started, time.monotonic())
        self._emit(outcome)
        self._pump()

    async def _finish(self) -> None:
        """Let in-flight sends complete, then close the HTTP transport and the limiter."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._wake_handle is not None:
            self._wake_handle.cancel()
        if self._transport is not None:
            await self._transport.aclose()
        self._pacer.close()

    def _schedule_wake(self, delay: float) -> None:
        """On the loop: ring ``wake`` in ``delay`` seconds, unless a ring comes sooner."""
        when = self._loop.time() + delay
        if self._wake_at is not None and self._wake_at <= when:
            return
        if self._wake_handle is not None:
            self._wake_handle.cancel()
        self._wake_at = when
        self._wake_handle = self._loop.call_at(when, self._ring)

    def _ring(self) -> None:
        self._wake_at = self._wake_handle = None
        self._ring_now()

    def _ring_now(self) -> None:
        """On the loop: call ``wake`` on an executor thread (it may block on the broker)."""
        if self._wake is not None and not self._stopping:
            self._loop.run_in_executor(None, self._wake)

    # -- recorder -----------------------------------------------------------------------------

    def _emit(self, outcome: Outcome) -> None:
        self._recorder.put(outcome)

    def _written(self, batch: list[Outcome], summary: RecordSummary | None) -> None:
        """On the recorder thread, after ``batch`` was recorded: ring when what it handed back
        with a delay is due, and at once for failure notices it queued."""
        delays = [o.delay for o in batch if o.result == AttemptResult.RELEASED and o.delay > 0]
        if delays and self._wake is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._schedule_wake, max(delays) + WAKE_MARGIN)
        if summary is not None and summary.notices and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._ring_now)  # failure notices are due now

    def _set_paused(self, paused: bool) -> None:
        with self._lock:
            was, self._paused = self._paused, paused
        if was and not paused and not self._loop.is_closed():
            log.info("sender pool: the database is back; sending again")
            self._loop.call_soon_threadsafe(self._pump)

    def _forget(self, count: int) -> None:
        with self._lock:
            self._unrecorded -= count
            if self._unrecorded <= 0:
                self._idle.notify_all()

    # -- lifecycle ----------------------------------------------------------------------------

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every submitted job has been sent and recorded; False on timeout."""
        with self._lock:
            return self._idle.wait_for(lambda: self._unrecorded <= 0, timeout)

    def begin_stop(self) -> None:
        """Stop taking work at once: waiting jobs go back to pending, :meth:`submit` returns
        (handing back what it is given) instead of waiting; in-flight sends finish."""
        with self._lock:
            self._stopping = True
            self._space.notify_all()
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._pump)

    def stop(self, timeout: float | None = None) -> None:
        """:meth:`begin_stop`, then finish in-flight sends, close the HTTP transport and
        record all, giving up on what cannot be recorded within ``timeout``."""
        give_up_at = None if timeout is None else time.monotonic() + timeout
        self.begin_stop()
        if self._sender.is_alive():
            finished = asyncio.run_coroutine_threadsafe(self._finish(), self._loop)
            try:
                finished.result(timeout)
            except (TimeoutError, concurrent.futures.TimeoutError):
                log.warning("sender pool: sends still in flight after %s s", timeout)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._sender.join(timeout)
        if not self._sender.is_alive() and not self._loop.is_closed():
            self._loop.close()  # and with it the e-mail threads
        self._recorder.finish(give_up_at, timeout)
