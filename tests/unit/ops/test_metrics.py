"""The worker's metrics endpoint sums forked children (prometheus_client multi-process mode).

Runs in a fresh interpreter: multi-process mode changes process-wide state."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from dispatcher.db import upgrade
from tests.conftest import free_port

SCRIPT = textwrap.dedent(
    """
    import multiprocessing, os, sys, urllib.request
    from dispatcher.ops import metrics# imported before the switch, as in `dispatcher worker`
    from dispatcher.config import Settings
    from dispatcher.ops.metrics import start_metrics_server

    server = start_metrics_server(
        Settings(database_url=sys.argv[1], worker_metrics_port=int(sys.argv[2]))
    )
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == server.directory

    def child(count):
        for _ in range(count):
            metrics.ATTEMPTS.labels(method="webhook", outcome="succeeded").inc()

    ctx = multiprocessing.get_context("fork")
    children = [ctx.Process(target=child, args=(n,)) for n in (3, 4)]
    for process in children:
        process.start()
    for process in children:
        process.join()
    url = f"http://127.0.0.1:{server.port}/metrics"
    sys.stdout.write(urllib.request.urlopen(url, timeout=5).read().decode())
    directory = server.directory
    server.close()
    assert not os.path.exists(directory)
    """
)


def test_forked_children_are_summed_and_queue_gauges_served(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    upgrade(url)

    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, url, str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )

    assert result.returncode == 0, result.stderr
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(result.stdout)
        for sample in family.samples
    }
    key = ("dispatcher_delivery_attempts_total", (("method", "webhook"), ("outcome", "succeeded")))
    assert samples[key] == 7
    assert samples[("dispatcher_oldest_pending_delivery_age_seconds", ())] == 0
