"""The worker run Celery's way: ``celery -A dispatcher.worker worker`` delivers, and Celery's
own ``status``, ``inspect`` and ``purge`` work on it, with the ``DISPATCHER_*`` settings."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import Pipeline, Receiver, wait_until

pytestmark = pytest.mark.integration

CELERY = str(Path(sys.executable).parent / "celery")


def celery(pipeline: Pipeline, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CELERY, "-A", "dispatcher.worker", *args],
        env=pipeline.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_celery_runs_and_inspects_the_worker(
    make_pipeline: Callable[..., Pipeline], receiver: Receiver, tmp_path: Path
) -> None:
    pipeline = make_pipeline()
    pipeline.notification("webhook", {"url": receiver.url()})
    log = tmp_path / "worker.log"
    with open(log, "ab") as output:
        worker = subprocess.Popen(
            [CELERY, "-A", "dispatcher.worker", "worker", "--pool=solo", "-Q", "dispatcher"],
            env=pipeline.env,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
    pipeline.processes.append(worker)

    assert pipeline.emit().deliveries == 1
    receiver.wait_for(1)
    wait_until(lambda: pipeline.statuses() == ["succeeded"])

    status = celery(pipeline, "status")
    assert status.returncode == 0, status.stderr + log.read_text()
    assert "1 node online" in status.stdout
    registered = celery(pipeline, "inspect", "registered")
    assert registered.returncode == 0 and "dispatcher.drain" in registered.stdout
    purged = celery(pipeline, "purge", "-f", "-Q", "dispatcher")
    assert purged.returncode == 0, purged.stderr
