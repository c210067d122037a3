"""A worker's drain: every due delivery into the pool, and the ring flag cleared before the last
claim."""

from __future__ import annotations

from tests.unit.pipeline_helpers import (
    FakeSender,
    delivery,
    emit,
    make_runtime,
    notify,
)


def test_drain_sends_everything_due_then_clears_the_flag(db_url: str, sender: FakeSender) -> None:
    from dispatcher.pipeline.doorbell import LocalRingFlag
    from dispatcher.worker.context import WorkerContext

    runtime = make_runtime(db_url, worker_batch_size=2)
    context = WorkerContext(runtime, {"webhook": sender})
    helped: list[int] = []
    try:
        for n in range(5):
            notify(runtime, url=f"http://hook.example/{n}")
        ids = emit(runtime)
        flag = LocalRingFlag()
        assert flag.acquire()  # a producer rang
        assert context.drain(flag, ask_for_help=lambda: helped.append(1)) == 5
        assert flag.acquire()  # cleared: the next producer rings again
        assert context.pool.wait_idle(10)
        assert all(delivery(runtime, d).status == "succeeded" for d in ids)
        assert len(helped) == 2  # two full batches of 2 asked other workers to join
    finally:
        context.close(10)
        runtime.close()


def test_drain_sees_work_committed_while_the_flag_was_still_set(
    db_url: str, sender: FakeSender
) -> None:
    """A producer that found the flag set rang nobody: the drain must still claim its work."""
    from dispatcher.pipeline.doorbell import LocalRingFlag
    from dispatcher.worker.context import WorkerContext

    runtime = make_runtime(db_url)
    context = WorkerContext(runtime, {"webhook": sender})
    flag = LocalRingFlag()
    cleared: list[str] = []

    class LateProducer:
        """Commits one more delivery just before the worker clears the flag."""

        def acquire(self) -> bool:
            return flag.acquire()

        def clear(self) -> None:
            if not cleared:
                cleared.extend(emit(runtime))
                assert not flag.acquire()  # the producer saw the flag set: no ring
            flag.clear()

    try:
        notify(runtime)
        first = emit(runtime)
        assert flag.acquire()
        assert context.drain(LateProducer()) == 2
        assert context.pool.wait_idle(10)
        assert all(delivery(runtime, d).status == "succeeded" for d in first + cleared)
    finally:
        context.close(10)
        runtime.close()
