"""The recorder thread alone: batches, what it tells the pool, and giving up at stop while the
database is away. (Through a pool: tests/unit/worker/test_pool.py.)"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import OperationalError

from dispatcher.config import Settings
from dispatcher.pipeline.attempt import Outcome
from dispatcher.pipeline.record import RecordSummary
from dispatcher.worker.recorder import OutcomeRecorder


class Calls:
    """What the recorder told: batches written, pauses, outcomes forgotten."""

    def __init__(self, failing: bool = False) -> None:
        self.failing = failing
        self.batches: list[list[Any]] = []
        self.paused: list[bool] = []
        self.written: list[tuple[int, RecordSummary | None]] = []
        self.forgotten = 0
        self.lock = threading.Lock()

    def record(self, outcomes: Sequence[Outcome]) -> RecordSummary | None:
        if self.failing:
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("down"))
        with self.lock:
            self.batches.append(list(outcomes))
        return RecordSummary(applied=len(outcomes))

    def recorder(self, **settings: Any) -> OutcomeRecorder:
        return OutcomeRecorder(
            Settings(**settings),
            self.record,
            paused=self.paused.append,
            written=lambda batch, summary: self.written.append((len(batch), summary)),
            forget=self.forget,
        )

    def forget(self, count: int) -> None:
        with self.lock:
            self.forgotten += count


def outcome(n: int) -> Outcome:
    return n  # type: ignore[return-value]  # the recorder only hands outcomes on


def test_outcomes_are_written_in_batches_and_each_forgotten_once() -> None:
    calls = Calls()
    recorder = calls.recorder(record_batch_size=4, record_interval=0.2)
    for n in range(10):
        recorder.put(outcome(n))
    recorder.finish(None, 5)
    assert [len(batch) for batch in calls.batches] == [4, 4, 2]
    assert [item for batch in calls.batches for item in batch] == list(range(10))  # in order
    assert [size for size, _ in calls.written] == [4, 4, 2]
    assert calls.forgotten == 10
    assert calls.paused == [False, False, False]


def test_with_the_database_away_it_pauses_keeps_and_gives_up_at_the_deadline() -> None:
    calls = Calls(failing=True)
    recorder = calls.recorder(record_batch_size=4, record_interval=0.01, record_backlog_max=6)
    for n in range(8):
        recorder.put(outcome(n))
    time.sleep(0.3)
    assert calls.batches == [] and calls.paused[:1] == [True]
    assert calls.forgotten == 2  # over the backlog's bound: the oldest two dropped
    started = time.monotonic()
    recorder.finish(time.monotonic() + 0.5, 5)
    assert 0.4 <= time.monotonic() - started < 3
    assert calls.forgotten == 8 and calls.written == []
