"""Rate limits: sixty deliveries to one paced Slack endpoint and a webhook beside them. It
prints figures and ratios; it asserts nothing.

    .venv/bin/python bench/ratelimit.py [--workers N] [--count 60] [--others 100]
        [--emit-rate 10] [--db sqlite|postgresql] [--broker URL] [--set NAME=VALUE]

One Slack notification at its default rate (1/s) and one webhook notification, each to a
receiver of its own on loopback; ``--workers`` ``dispatcher worker`` processes (each naming
itself in the links it renders, so the receiver can tell who sent what) and a scheduler. Once
they are up, a producer emits ``--count`` events for the Slack notification and ``--others``
for the webhook, interleaved, ``--emit-rate`` of each a second: the Slack backlog grows ten
times faster than it may be sent, and every drain rings whichever worker is free, so with
two workers both hold a share of it. It prints the Slack messages' gaps between arrivals
(median, p10, p90) and the median's ratio to the interval the rate allows, how many each
worker sent, and the webhook deliveries' latency (emit to arrival) beside the Slack run.
"""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pipeline import (  # noqa: E402
    bench_parser,
    chosen_settings,
    database,
    env_for,
    flush_broker,
    receiver,
    runtime_for,
    stop,
    wait_finished,
)
from dispatcher.models import Notification, Repository  # noqa: E402
from dispatcher.runtime import Runtime  # noqa: E402
from dispatcher.senders.slack import DEFAULT_RATE_LIMIT  # noqa: E402
from dispatcher.service import emit as producer  # noqa: E402

REPOSITORY = "bench/paced"
STARTUP = 3.0  # seconds the workers get to start before the first emit


def add_notifications(runtime: Runtime, slack_url: str, hook_url: str) -> None:
    namespace, name = REPOSITORY.split("/")
    with runtime.sessions.begin() as session:
        repository = Repository(namespace=namespace, name=name)
        session.add(repository)
        session.flush()
        for method, event, url in (
            ("slack", "repo_push", slack_url),
            ("webhook", "build_queued", hook_url),
        ):
            session.add(
                Notification(
                    repository_id=repository.id,
                    event=event,
                    method=method,
                    config={"url": url},
                    event_config={},
                    number_of_failures=0,
                )
            )


@contextlib.contextmanager
def workers_running(env: dict[str, str], names: list[str]) -> Iterator[None]:
    """A ``dispatcher worker`` per name (its SERVER_HOSTNAME) and a scheduler beside them."""
    command = [sys.executable, "-m", "dispatcher"]
    quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes = [
        subprocess.Popen(
            [*command, "worker"],
            env={**env, "DISPATCHER_SERVER_HOSTNAME": name},
            **quiet,
        )
        for name in names
    ]
    processes.append(subprocess.Popen([*command, "scheduler"], env=env, **quiet))
    try:
        yield
    finally:
        for process in reversed(processes):
            stop(process)


def log_lines(log: Path) -> list[list[str]]:
    """The lines of a receiver's log with two fields: ``<time> <worker>`` for a Slack message
    (it has no webhook-id), ``<webhook-id> <time>`` for a webhook (the receiver's start-up
    probe has one field)."""
    lines = (line.split() for line in log.read_text().splitlines())
    return [fields for fields in lines if len(fields) == 2]


def run(
    db: str,
    broker: str,
    workers: int,
    count: int,
    others: int,
    emit_rate: float,
    **overrides: Any,
) -> None:
    flush_broker(broker)
    names = [f"worker{n}.bench" for n in range(1, workers + 1)]
    with tempfile.TemporaryDirectory() as tmp, database(db) as url:
        slack_log, hook_log = Path(tmp, "slack.log"), Path(tmp, "hook.log")
        with (
            receiver(log=str(slack_log), marks=tuple(names)) as slack_port,
            receiver(log=str(hook_log)) as hook_port,
        ):
            env = env_for(url, broker, **overrides)
            runtime = runtime_for(env)
            add_notifications(
                runtime,
                f"http://127.0.0.1:{slack_port}/slack",
                f"http://127.0.0.1:{hook_port}/hook",
            )
            with workers_running(env, names):
                time.sleep(STARTUP)
                started = time.time()
                emitted = produce(runtime, count, others, emit_rate)
                wait_finished(runtime, count + others, timeout=count / DEFAULT_RATE_LIMIT + 120)
            runtime.close()
        # the logs are written when the receivers stop
        slack = [(float(at), worker) for at, worker in log_lines(slack_log)]
        hooks = {webhook_id: float(at) for webhook_id, at in log_lines(hook_log)}
    latencies = [hooks[d] - at for d, at in emitted.items() if d in hooks]
    report(db, workers, count, others, started, slack, latencies)


def produce(runtime: Runtime, count: int, others: int, rate: float) -> dict[str, float]:
    """Emit the events, ``rate`` rounds a second; the webhook's delivery ids and when they
    were emitted."""
    emitted: dict[str, float] = {}
    next_at = time.perf_counter()
    for n in range(max(count, others)):
        if n < count:
            emit(runtime, "repo_push", {"updated_tags": [f"v{n}"]})
        if n < others:
            at = time.time()
            for delivery_id in emit(runtime, "build_queued", {"build_id": str(n)}):
                emitted[delivery_id] = at
        next_at += 1.0 / rate
        time.sleep(max(0.0, next_at - time.perf_counter()))
    return emitted


def emit(runtime: Runtime, event: str, data: dict[str, Any]) -> tuple[str, ...]:
    return tuple(
        producer.emit(
            runtime.sessions, runtime.settings, runtime.doorbell, REPOSITORY, event, data
        ).delivery_ids
    )


def report(
    db: str,
    workers: int,
    count: int,
    others: int,
    started: float,
    slack: list[tuple[float, str]],
    latencies: list[float],
) -> None:
    times = sorted(at for at, _ in slack)
    gaps = [b - a for a, b in pairwise(times)]
    interval = 1.0 / DEFAULT_RATE_LIMIT
    deciles = statistics.quantiles(gaps, n=10)
    median = statistics.median(gaps)
    shares = Counter(worker for _, worker in slack)
    latencies.sort()
    label = f"[ratelimit] {db}, {workers} worker{'s' if workers > 1 else ''}"
    print(
        f"{label}: {len(times)}/{count} Slack messages at the default {DEFAULT_RATE_LIMIT:g}/s: "
        f"gaps between arrivals median {median:.3f} s (p10 {deciles[0]:.3f}, "
        f"p90 {deciles[-1]:.3f}, min {min(gaps):.3f}), ratio to {interval:g} s "
        f"{median / interval:.3f}; first to last {times[-1] - times[0]:.1f} s"
    )
    print(f"{label}: sent by " + ", ".join(f"{name} {shares[name]}" for name in sorted(shares)))
    print(
        f"{label}: the webhook beside it: {len(latencies)}/{others} deliveries, emit to "
        f"arrival p50 {statistics.median(latencies) * 1000:.0f} ms, max "
        f"{latencies[-1] * 1000:.0f} ms, while the Slack messages took "
        f"{times[-1] - started:.1f} s from the first emit"
    )


def main() -> None:
    parser = bench_parser(__doc__, setting_example="lease_seconds=300")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--count", type=int, default=60, help="Slack deliveries")
    parser.add_argument("--others", type=int, default=100, help="webhook deliveries beside them")
    parser.add_argument("--emit-rate", type=float, default=10.0, help="events of each a second")
    args = parser.parse_args()
    run(
        args.db,
        args.broker,
        args.workers,
        args.count,
        args.others,
        args.emit_rate,
        **chosen_settings(args),
    )


if __name__ == "__main__":
    main()
