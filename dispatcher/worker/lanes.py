"""Per-target bookkeeping of a sender pool: one lane of waiting jobs per target, pure.

No threads, no locks, no clock of its own: the pool calls it under its lock and passes the
time (``time.monotonic()`` seconds). A *target* is where deliveries go (``method:host``, see
``Sender.target_key``). Each lane holds at most ``per_target_queued`` waiting jobs and has at
most ``per_target_concurrency`` sends in flight; lanes with work and a free slot take turns
(round robin), so an endpoint that hangs holds only its own slots.

A full lane is *stuck* on evidence only: a send of its target has been in flight for
``stuck_after`` seconds and the target has answered nothing since that send started. The
pool then hands further jobs of it back to pending rather than wait for room. A target that
was idle and then gets a burst is not stuck: its sends have only just started. A lane with
nothing waiting and nothing in flight is forgotten, so a worker's memory does not grow with
every host it has ever sent to.

A lane can be *held*: the job :meth:`Lanes.next` gave goes back to the front of its lane, and
the lane takes no turn until it is released, so its jobs keep their order while it waits (the
pool holds a rate-limited lane until its budget allows the next send, see
:mod:`dispatcher.worker.limiter`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from dispatcher.pipeline.claim import Job


@dataclass
class _Lane:
    waiting: deque[Job] = field(default_factory=deque)
    started: list[float] = field(default_factory=list)  # of the sends in flight, oldest first
    last_answer: float = float("-inf")
    held: bool = False

    @property
    def inflight(self) -> int:
        return len(self.started)


class Lanes:
    """The lanes of one pool (see the module docstring)."""

    def __init__(self, per_target_concurrency: int, per_target_queued: int, stuck_after: float):
        self._concurrency = per_target_concurrency
        self._capacity = per_target_queued
        self._stuck_after = stuck_after
        self._lanes: dict[str, _Lane] = {}
        self._ready: deque[str] = deque()
        self._ready_keys: set[str] = set()
        self.queued = 0  # jobs waiting in all lanes
        self.busy = 0  # sends in flight in all lanes

    def __len__(self) -> int:
        """How many lanes are remembered."""
        return len(self._lanes)

    def is_full(self, key: str) -> bool:
        lane = self._lanes.get(key)
        return lane is not None and len(lane.waiting) >= self._capacity

    def is_stuck(self, key: str, now: float) -> bool:
        """True for a full lane whose oldest send in flight started ``stuck_after`` seconds ago
        or more, with no answer from its target since."""
        lane = self._lanes.get(key)
        if lane is None or len(lane.waiting) < self._capacity or not lane.started:
            return False
        return now - max(lane.started[0], lane.last_answer) >= self._stuck_after

    def waiting(self, key: str) -> int:
        """How many jobs wait in the lane of ``key``."""
        lane = self._lanes.get(key)
        return 0 if lane is None else len(lane.waiting)

    def is_held(self, key: str) -> bool:
        lane = self._lanes.get(key)
        return lane is not None and lane.held

    def add(self, key: str, job: Job) -> bool:
        """Queue ``job`` in its lane; False (nothing queued) when the lane is full."""
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        if len(lane.waiting) >= self._capacity:
            return False
        lane.waiting.append(job)
        self.queued += 1
        self._offer(key, lane)
        return True

    def next(self) -> tuple[str, Job] | None:
        """The next waiting job, from the lane whose turn it is; None when no lane has work and
        a free slot. Follow with :meth:`begin` (it is sent) or :meth:`drop` (it is not)."""
        if not self._ready:
            return None
        key = self._ready.popleft()
        self._ready_keys.discard(key)
        job = self._lanes[key].waiting.popleft()
        self.queued -= 1
        return key, job

    def begin(self, key: str, now: float) -> float:
        """The job :meth:`next` gave is being sent from ``now``: it is in flight until
        :meth:`finish` with the time returned."""
        lane = self._lanes[key]
        lane.started.append(now)
        self.busy += 1
        self._offer(key, lane)
        return now

    def drop(self, key: str) -> None:
        """The job :meth:`next` gave is not sent (it is handed back)."""
        lane = self._lanes[key]
        self._offer(key, lane)
        self._forget_if_idle(key, lane)

    def hold(self, key: str, job: Job) -> None:
        """The job :meth:`next` gave is not sent yet: it goes back to the front of its lane,
        which takes no turn until :meth:`release`."""
        lane = self._lanes[key]
        lane.waiting.appendleft(job)
        self.queued += 1
        lane.held = True

    def release(self, key: str) -> None:
        """The lane of ``key`` takes turns again (nothing happens to a lane not held)."""
        lane = self._lanes.get(key)
        if lane is not None and lane.held:
            lane.held = False
            self._offer(key, lane)

    def release_all(self) -> None:
        """Release every held lane (the pool is stopping: what waits is handed back)."""
        for key, lane in self._lanes.items():
            if lane.held:
                lane.held = False
                self._offer(key, lane)

    def finish(self, key: str, started: float, now: float) -> None:
        """The send of ``key`` begun at ``started`` has ended (whatever its outcome)."""
        lane = self._lanes[key]
        lane.started.remove(started)
        lane.last_answer = now
        self.busy -= 1
        self._offer(key, lane)
        self._forget_if_idle(key, lane)

    def _offer(self, key: str, lane: _Lane) -> None:
        if (
            lane.waiting
            and not lane.held
            and lane.inflight < self._concurrency
            and key not in self._ready_keys
        ):
            self._ready.append(key)
            self._ready_keys.add(key)

    def _forget_if_idle(self, key: str, lane: _Lane) -> None:
        if not lane.waiting and not lane.inflight:
            del self._lanes[key]


__all__ = ["Lanes"]
