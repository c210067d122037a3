"""Delivery under faults, 10,000 deliveries per case, on PostgreSQL with a private Redis broker.
It prints figures; it asserts nothing.

    .venv/bin/python bench/faults.py CASE [--runs N]

Cases (see bench/README.md): ``kill-worker`` (SIGKILL one of two workers mid-run),
``redis`` (kill Redis and start it again empty), ``outage`` (PostgreSQL cut for 10 s through a
TCP proxy), ``no-scheduler`` and ``kill-scheduler`` (every first attempt answered 503: each
delivery needs its retry), ``sigterm`` (SIGTERM to a worker holding a backlog), ``all``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pipeline import (  # noqa: E402
    BODY,
    add_notifications,
    database,
    env_for,
    flush_broker,
    free_port,
    receiver,
    runtime_for,
    stop,
)
from dispatcher.models import Delivery  # noqa: E402
from dispatcher.runtime import Runtime  # noqa: E402
from dispatcher.service import emit as producer  # noqa: E402
from tests.redisserver import RedisServer  # noqa: E402
from tests.tcpproxy import TCPProxy  # noqa: E402

TOTAL = 10_000
WEBHOOKS = 1_000  # ten events, each to a thousand webhooks


@dataclass
class Run:
    """One case's processes, database (through a proxy) and receiver log."""

    env: dict[str, str]
    runtime: Runtime  # the producer's and the observer's, on the database directly
    proxy: TCPProxy
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    # (webhook-id, arrival time) of every request, read when the case is over
    received: list[tuple[str, float]] = field(default_factory=list)

    def start(self, command: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "dispatcher", command],
            env=self.env,
            stdout=subprocess.DEVNULL,  # Celery's banner
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def emit_all(self) -> None:
        runtime = self.runtime
        for _ in range(TOTAL // WEBHOOKS):
            producer.emit(
                runtime.sessions, runtime.settings, runtime.doorbell, "bench/f", "repo_push", BODY
            )

    def finished(self, status: str | None = None) -> int:
        with self.runtime.sessions() as session:
            query = select(func.count()).select_from(Delivery)
            if status is None:
                query = query.where(Delivery.status != "pending")
            else:
                query = query.where(Delivery.status == status)
            return session.scalar(query) or 0

    def wait(self, condition: Callable[[], bool], timeout: float = 600) -> float:
        started = time.monotonic()
        while not condition():
            if time.monotonic() - started > timeout:
                raise RuntimeError("not reached in time")
            time.sleep(0.05)
        return time.monotonic() - started


@contextlib.contextmanager
def running(
    broker: str, *, fail_first: bool = False, delay: float = 0.0, **overrides: object
) -> Iterator[Run]:
    if broker.startswith("redis://127.0.0.1:6379"):
        flush_broker(broker)
    with tempfile.TemporaryDirectory() as tmp, database("postgresql") as url:
        log = Path(tmp) / "received.log"
        proxy = TCPProxy(("127.0.0.1", 5432))
        proxy.start()
        proxied = url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        with receiver(delay=delay, log=str(log), fail_first=fail_first) as port:
            env = env_for(proxied, broker, **overrides)
            runtime = runtime_for(env_for(url, broker, **overrides))
            add_notifications(runtime, "bench/f", [f"http://127.0.0.1:{port}/hook"] * WEBHOOKS)
            run = Run(env, runtime, proxy)
            try:
                yield run
            finally:
                proxy.start()
                for process in run.processes:
                    stop(process)
                runtime.close()
                proxy.stop()
        # the receiver wrote its log when it stopped
        arrivals = [line.split() for line in log.read_text().splitlines()]
        run.received = [(fields[0], float(fields[1])) for fields in arrivals if len(fields) == 2]


def duplicates(run: Run) -> int:
    counts = Counter(webhook_id for webhook_id, _ in run.received)
    return sum(count - 1 for count in counts.values())


# -- cases -------------------------------------------------------------------------------------


def kill_worker(broker: str) -> str:
    with running(broker, lease_seconds=20) as run:
        run.emit_all()
        first = run.start("worker")
        run.start("worker")
        run.start("scheduler")
        run.wait(lambda: run.finished() >= TOTAL // 4)
        os.killpg(first.pid, signal.SIGKILL)
        run.start("worker")
        took = run.wait(lambda: run.finished("succeeded") == TOTAL)
    return (
        f"[kill-worker] SIGKILL one of two workers at {TOTAL // 4:,} done: {TOTAL:,}/{TOTAL:,} "
        f"succeeded {took:.1f} s later; {duplicates(run)} duplicates"
    )


def redis_restart(broker_dir: Path) -> str:
    server = RedisServer(free_port(), broker_dir)
    server.start()
    try:
        with running(server.url()) as run:
            run.start("worker")
            run.start("worker")
            run.start("scheduler")
            run.emit_all()
            run.wait(lambda: run.finished() >= TOTAL // 4)
            server.kill()
            time.sleep(2)
            server.start()
            took = run.wait(lambda: run.finished("succeeded") == TOTAL)
    finally:
        server.stop()
    return (
        f"[redis] Redis killed for 2 s at {TOTAL // 4:,} done and started empty: "
        f"{TOTAL:,}/{TOTAL:,} succeeded {took:.1f} s after it was back; "
        f"{duplicates(run)} duplicates"
    )


def outage(broker: str, runs: int) -> str:
    lines = []
    sweep_interval = 1.0
    for number in range(1, runs + 1):
        with running(broker, sweep_interval=sweep_interval) as run:
            run.start("worker")
            run.start("worker")
            run.start("scheduler")
            run.emit_all()
            run.wait(lambda: run.finished() >= TOTAL // 4)
            run.proxy.stop()
            cut_at = time.time()
            time.sleep(10)
            run.proxy.start()
            back_at = time.time()
            run.wait(lambda: run.finished("succeeded") == TOTAL)
        during = sum(1 for _, at in run.received if cut_at < at < back_at)
        after = [at for _, at in run.received if at >= back_at]
        flowing = min(after) - back_at if after else float("nan")
        lines.append(
            f"[outage {number}/{runs}] PostgreSQL cut 10 s at {TOTAL // 4:,} done: "
            f"{TOTAL:,}/{TOTAL:,} succeeded; sends during the cut {during}; first send "
            f"{flowing:.2f} s after it was back (sweep interval {sweep_interval:g} s); "
            f"{duplicates(run)} duplicates"
        )
        print(lines[-1], flush=True)
    return "\n".join(lines)


def retries(broker: str, kill_scheduler: bool) -> str:
    with running(broker, fail_first=True, retry_schedule="2,2", retry_jitter=0) as run:
        scheduler = run.start("scheduler") if kill_scheduler else None
        run.start("worker")
        run.start("worker")
        run.emit_all()
        if scheduler is not None:
            run.wait(lambda: _attempted(run) >= TOTAL // 2)
            os.killpg(scheduler.pid, signal.SIGKILL)
        took = run.wait(lambda: run.finished("succeeded") == TOTAL)
    label = "kill-scheduler" if kill_scheduler else "no-scheduler"
    how = (
        "scheduler SIGKILLed at half the first attempts"
        if kill_scheduler
        else "two workers, no scheduler"
    )
    per_id = Counter(webhook_id for webhook_id, _ in run.received)
    retried = sum(1 for count in per_id.values() if count >= 2)
    return (
        f"[{label}] {how}, every first attempt answered 503: {TOTAL:,}/{TOTAL:,} succeeded "
        f"{took:.1f} s after the emit; {retried:,} delivered by their retry"
    )


def _attempted(run: Run) -> int:
    from dispatcher.models import Attempt

    with run.runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(Attempt)) or 0


def sigterm(broker: str) -> str:
    with running(broker, delay=0.1, http_timeout=10) as run:
        run.emit_all()
        worker = run.start("worker")
        run.wait(lambda: _attempted(run) >= 100)
        due = TOTAL - run.finished()
        worker.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        worker.wait(60)
        exited = time.monotonic() - signalled
        run.start("worker")
        took = run.wait(lambda: run.finished("succeeded") == TOTAL)
    return (
        f"[sigterm] SIGTERM with {due:,} deliveries not yet done (receiver answering in 100 ms, "
        f"HTTP_TIMEOUT 10 s): exited in {exited:.1f} s; the next worker finished all "
        f"{TOTAL:,} {took:.1f} s later; {duplicates(run)} duplicates"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cases = ["kill-worker", "redis", "outage", "no-scheduler", "kill-scheduler", "sigterm"]
    parser.add_argument("case", choices=[*cases, "all"])
    parser.add_argument("--runs", type=int, default=10, help="outage runs (default 10)")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/9")
    args = parser.parse_args()
    chosen = cases if args.case == "all" else [args.case]
    for case in chosen:
        with tempfile.TemporaryDirectory() as tmp:
            if case == "kill-worker":
                line = kill_worker(args.broker)
            elif case == "redis":
                line = redis_restart(Path(tmp))
            elif case == "outage":
                line = outage(args.broker, args.runs)
                continue  # printed run by run
            elif case in ("no-scheduler", "kill-scheduler"):
                line = retries(args.broker, kill_scheduler=case == "kill-scheduler")
            else:
                line = sigterm(args.broker)
        print(line, flush=True)


if __name__ == "__main__":
    main()
