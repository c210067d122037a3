"""Delivery-pipeline benchmarks. They print figures and ratios; they assert nothing.

    .venv/bin/python bench/pipeline.py SCENARIO [--db sqlite|postgresql] [--broker URL]

Scenarios (see bench/README.md): ``a`` (10,000 events x 1 webhook), ``b`` (1 event x 10,000
webhooks), ``c`` (5,000 deliveries to a receiver answering after 100 ms), ``d`` (as c, 10 % to a
receiver that never answers), ``latency`` (event → webhook received at 100 events/s), ``emit``
(emit() to 1,000 and 10,000 notifications), ``all``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
from sqlalchemy import func, insert, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dispatcher.config import Settings  # noqa: E402
from dispatcher.db import upgrade  # noqa: E402
from dispatcher.models import Attempt, Delivery, Notification, Repository, utcnow  # noqa: E402
from dispatcher.runtime import Runtime, create_runtime  # noqa: E402
from dispatcher.service import emit as producer  # noqa: E402
from dispatcher.worker.bell import doorbell_for  # noqa: E402

PG_ADMIN = os.environ.get(
    "DISPATCHER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BODY = {"updated_tags": ["v1", "latest"], "pruned_image_count": 0}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def database(kind: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/bench.db"
            upgrade(url)
            yield url
        return
    name = f"dispatcher_bench_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = (
            PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
            + "/"
            + name
        )
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def receiver(
    delay: float = 0.0,
    hang: bool = False,
    log: str | None = None,
    fail_first: bool = False,
    marks: tuple[str, ...] = (),
) -> Iterator[int]:
    port = free_port()
    args = [sys.executable, str(ROOT / "bench" / "receiver.py"), str(port), "--delay", str(delay)]
    if hang:
        args.append("--hang")
    if fail_first:
        args.append("--fail-first")
    if log:
        args += ["--log", log]
    for mark in marks:
        args += ["--mark", mark]
    process = subprocess.Popen(args)
    deadline = time.monotonic() + 10
    while True:
        try:
            httpx.post(f"http://127.0.0.1:{port}/", content=b"", timeout=0.2)
            break
        except httpx.TimeoutException:
            break  # a hanging receiver accepted the connection: it is up
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)


def env_for(url: str, broker: str, **overrides: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCHER_")}
    env.update(
        {
            "DISPATCHER_DATABASE_URL": url,
            "DISPATCHER_BROKER_URL": broker,
            "DISPATCHER_ALLOWED_NETWORKS": "127.0.0.0/8",
            "DISPATCHER_LOG_LEVEL": "WARNING",
        }
    )
    env.update({f"DISPATCHER_{k.upper()}": str(v) for k, v in overrides.items()})
    return env


def runtime_for(env: dict[str, str]) -> Runtime:
    values = {
        k.removeprefix("DISPATCHER_").lower(): v
        for k, v in env.items()
        if k.startswith("DISPATCHER_")
    }
    settings = Settings(**values)
    return create_runtime(settings, doorbell_for(settings))


def add_notifications(runtime: Runtime, repo: str, urls: list[str]) -> None:
    namespace, name = repo.split("/")
    now = utcnow()
    with runtime.sessions.begin() as session:
        repository = Repository(namespace=namespace, name=name)
        session.add(repository)
        session.flush()
        session.execute(
            insert(Notification),
            [
                {
                    "uuid": secrets.token_hex(16),
                    "repository_id": repository.id,
                    "event": "repo_push",
                    "method": "webhook",
                    "config": {"url": url},
                    "event_config": {},
                    "number_of_failures": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                for url in urls
            ],
        )


@contextlib.contextmanager
def worker_running(env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """One ``dispatcher worker`` process and ``dispatcher scheduler`` beside it, as a
    deployment runs them; yields the worker process."""
    command = [sys.executable, "-m", "dispatcher"]
    worker = subprocess.Popen([*command, "worker"], env=env, stderr=subprocess.DEVNULL)
    sweeper = subprocess.Popen([*command, "scheduler"], env=env, stderr=subprocess.DEVNULL)
    try:
        yield worker
    finally:
        stop(sweeper)
        stop(worker)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_finished(runtime: Runtime, expected: int, where: Any = None, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with runtime.sessions() as session:
            query = select(func.count()).select_from(Delivery).where(Delivery.status != "pending")
            if where is not None:
                query = query.where(where)
            if (session.scalar(query) or 0) >= expected:
                return
        time.sleep(0.1)
    raise RuntimeError("deliveries did not finish in time")


def drain_rate(runtime: Runtime, where: Any = None) -> tuple[float, int]:
    """Deliveries/s from the first attempt's start to the last delivery's finish."""
    with runtime.sessions() as session:
        first_q = select(func.min(Attempt.started_at)).join(Delivery)
        last_q = select(func.max(Delivery.finished_at), func.count()).where(
            Delivery.status == "succeeded"
        )
        if where is not None:
            first_q, last_q = first_q.where(where), last_q.where(where)
        first: datetime = session.scalar(first_q)  # type: ignore[assignment]
        last, count = session.execute(last_q).one()
    return count / max((last - first).total_seconds(), 1e-6), count


def baseline_rate(port: int, count: int = 3000) -> float:
    """A bare keep-alive httpx.Client POST loop to the same receiver."""
    body = {
        **BODY,
        "repository": "bench/a",
        "namespace": "bench",
        "name": "a",
        "docker_url": "quay.example.com/bench/a",
        "homepage": "https://quay.example.com/repository/bench/a",
    }
    with httpx.Client() as client:
        for _ in range(200):
            client.post(f"http://127.0.0.1:{port}/hook", json=body)
        started = time.perf_counter()
        for _ in range(count):
            client.post(f"http://127.0.0.1:{port}/hook", json=body)
        return count / (time.perf_counter() - started)


def threaded_baseline_rate(port: int, threads: int = 64, seconds: float = 5.0) -> float:
    """``threads`` threads POSTing in a loop through one shared bare httpx.Client, for the
    slow-receiver scenarios, where concurrency, not per-request cost, decides the rate."""
    limits = httpx.Limits(max_connections=threads, max_keepalive_connections=threads)
    done = [0]
    lock = threading.Lock()
    with httpx.Client(limits=limits) as client:
        stop_at = time.monotonic() + seconds

        def loop() -> None:
            while time.monotonic() < stop_at:
                client.post(f"http://127.0.0.1:{port}/hook", json=BODY)
                with lock:
                    done[0] += 1

        workers = [threading.Thread(target=loop) for _ in range(threads)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
    return done[0] / seconds


def flush_broker(broker: str) -> None:
    redis.Redis.from_url(broker).flushdb()


# -- scenarios --------------------------------------------------------------------------------


def throughput(db: str, broker: str, scenario: str, **overrides: Any) -> dict[str, float]:
    n_events, n_notifications = (10_000, 1) if scenario == "a" else (1, 10_000)
    flush_broker(broker)
    with database(db) as url, receiver() as port:
        env = env_for(url, broker, **overrides)
        runtime = runtime_for(env)
        add_notifications(runtime, "bench/a", [f"http://127.0.0.1:{port}/hook"] * n_notifications)
        for _ in range(n_events):
            producer.emit(
                runtime.sessions, runtime.settings, runtime.doorbell, "bench/a", "repo_push", BODY
            )
        total = n_events * n_notifications
        # The bare loop moves by ±20 % from one run to the next: take three runs before the
        # worker starts and three after it is done, and compare with their median.
        bases = [baseline_rate(port, 2000) for _ in range(3)]
        with worker_running(env) as worker:
            wait_finished(runtime, total)
            rss = peak_rss_mb(worker.pid)
        rate, ok = drain_rate(runtime)
        bases += [baseline_rate(port, 2000) for _ in range(3)]
        base = statistics.median(bases)
        runtime.close()
    print(
        f"[{scenario}] {db}: {ok}/{total} delivered at {rate:,.0f}/s; bare httpx loop "
        f"{base:,.0f}/s (median of 6 runs, {min(bases):,.0f}-{max(bases):,.0f}); "
        f"ratio {rate / base:.2f}; worker peak RSS {rss:.0f} MB"
    )
    return {"rate": rate, "baseline": base, "ratio": rate / base, "rss": rss}


def slow_receivers(db: str, broker: str, hung_share: float, **overrides: Any) -> dict[str, float]:
    total = 5000
    hung_count = int(total * hung_share)
    flush_broker(broker)
    with database(db) as url, receiver(delay=0.1) as port, receiver(hang=True) as hung_port:
        env = env_for(url, broker, **overrides)
        runtime = runtime_for(env)
        urls = [f"http://127.0.0.1:{hung_port}/hook"] * hung_count
        urls += [f"http://127.0.0.1:{port}/hook"] * (total - hung_count)
        add_notifications(runtime, "bench/slow", urls)
        producer.emit(
            runtime.sessions, runtime.settings, runtime.doorbell, "bench/slow", "repo_push", BODY
        )
        good = Delivery.notification_id.in_(
            select(Notification.id).where(
                Notification.config["url"].as_string().contains(str(port))
            )
        )
        with worker_running(env):
            wait_finished(runtime, total - hung_count, where=good)
        rate, ok = drain_rate(runtime, good)
        runtime.close()
        base = threaded_baseline_rate(port)
    label = "d" if hung_share else "c"
    print(
        f"[{label}] {db}: {ok} deliveries to the 100 ms receiver at {rate:,.0f}/s"
        + (f" while {hung_count} go to a receiver that never answers" if hung_count else "")
        + f"; 64 threads on one bare httpx.Client: {base:,.0f}/s"
    )
    return {"rate": rate}


def latency(db: str, broker: str, **overrides: Any) -> dict[str, float]:
    flush_broker(broker)
    with tempfile.TemporaryDirectory() as tmp, database(db) as url:
        log = f"{tmp}/received.log"
        with receiver(log=log) as port:
            env = env_for(url, broker, **overrides)
            runtime = runtime_for(env)
            add_notifications(runtime, "bench/lat", [f"http://127.0.0.1:{port}/hook"])
            with worker_running(env):
                time.sleep(3)  # worker start-up
                emitted: dict[str, float] = {}
                interval, count = 0.01, 1000
                next_at = time.perf_counter()
                for _ in range(count):
                    now = time.time()
                    result = producer.emit(
                        runtime.sessions,
                        runtime.settings,
                        runtime.doorbell,
                        "bench/lat",
                        "repo_push",
                        BODY,
                    )
                    emitted[result.delivery_ids[0]] = now
                    next_at += interval
                    time.sleep(max(0.0, next_at - time.perf_counter()))
                wait_finished(runtime, count)
            runtime.close()
        pairs = (line.split() for line in Path(log).read_text().splitlines())
        received = dict(pair for pair in pairs if len(pair) == 2)
    lat = sorted((float(received[d]) - at) * 1000 for d, at in emitted.items() if d in received)
    p50 = statistics.median(lat)
    p99 = lat[int(len(lat) * 0.99) - 1]
    print(
        f"[latency] {db}: {len(lat)} events at 100/s, event→webhook received p50 {p50:.1f} ms, "
        f"p99 {p99:.1f} ms, max {lat[-1]:.1f} ms"
    )
    return {"p50": p50, "p99": p99}


def emit_timing(db: str, broker: str) -> dict[str, float]:
    flush_broker(broker)
    out: dict[str, float] = {}
    with database(db) as url:
        runtime = runtime_for(env_for(url, broker))
        for size in (1000, 10_000):
            repo = f"bench/emit{size}"
            add_notifications(runtime, repo, ["http://127.0.0.1:9/hook"] * size)
            times = []
            # A producer emits over and over; its first emits also pay for cold caches
            # (statements not yet prepared, fresh indexes), shown apart.
            for _ in range(2):
                started = time.perf_counter()
                producer.emit(
                    runtime.sessions, runtime.settings, runtime.doorbell, repo, "repo_push", BODY
                )
                times.append((time.perf_counter() - started) * 1000)
            cold, times = times, []
            for _ in range(5):
                started = time.perf_counter()
                result = producer.emit(
                    runtime.sessions, runtime.settings, runtime.doorbell, repo, "repo_push", BODY
                )
                times.append((time.perf_counter() - started) * 1000)
                assert result.deliveries == size
            median = statistics.median(times)
            out[str(size)] = median
            print(
                f"[emit] {db}: emit() to {size:,} notifications: median {median:.0f} ms "
                f"(min {min(times):.0f}, max {max(times):.0f}) incl. commit and ring, after two "
                f"that took {cold[0]:.0f} and {cold[1]:.0f} ms"
            )
        runtime.close()
    flush_broker(broker)
    return out


def bench_parser(doc: str | None, *, setting_example: str) -> argparse.ArgumentParser:
    """The options every benchmark takes: ``--db``, ``--broker`` and ``--set NAME=VALUE``
    (read back with :func:`chosen_settings`)."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/9")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"a worker setting for this run, e.g. --set {setting_example}",
    )
    return parser


def chosen_settings(args: argparse.Namespace) -> dict[str, str]:
    return dict(item.split("=", 1) for item in args.set)


def main() -> None:
    parser = bench_parser(__doc__, setting_example="worker_per_host_concurrency=4")
    parser.add_argument("scenario", choices=["a", "b", "c", "d", "latency", "emit", "all"])
    args = parser.parse_args()
    settings = chosen_settings(args)
    chosen = ["a", "b", "c", "d", "latency", "emit"] if args.scenario == "all" else [args.scenario]
    for scenario in chosen:
        if scenario in ("a", "b"):
            throughput(args.db, args.broker, scenario, **settings)
        elif scenario == "c":
            slow_receivers(args.db, args.broker, 0.0, **settings)
        elif scenario == "d":
            slow_receivers(args.db, args.broker, 0.1, **settings)
        elif scenario == "latency":
            latency(args.db, args.broker, **settings)
        else:
            emit_timing(args.db, args.broker)


if __name__ == "__main__":
    main()
