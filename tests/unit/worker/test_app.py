"""The Celery app's per-process context: built once, when the pool's process starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from celery.signals import worker_process_init

from dispatcher.worker.app import create_celery
from tests.unit.pipeline_helpers import FakeSender, make_runtime, migrated_sqlite


def test_context_is_built_when_the_process_starts_and_only_once(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from dispatcher.worker.context import WorkerContext

    runtime = make_runtime(migrated_sqlite(tmp_path, tmp_path_factory.getbasetemp()))
    built: list[WorkerContext] = []

    def factory() -> WorkerContext:
        context = WorkerContext(runtime, {"webhook": FakeSender()})
        built.append(context)
        return context

    app: Any = create_celery(runtime.settings, context_factory=factory)
    holder = app.dispatcher_context
    try:
        worker_process_init.send(sender="test-worker")
        assert built == []  # a producer's app ignores the worker's signals
        holder.attach()  # what `dispatcher worker` does
        assert built == []  # nothing before the pool starts (a prefork parent forks later)
        worker_process_init.send(sender="test-worker")
        assert len(built) == 1
        assert holder.get() is built[0]
        worker_process_init.send(sender="test-worker")
        assert len(built) == 1
    finally:
        holder.detach()
        holder.close()
        runtime.close()
