"""Real parts for the pipeline's integration tests: a private redis-server, a database per
backend (SQLite file, per-run PostgreSQL database), an HTTP receiver and an SMTP server on
loopback, and ``dispatcher worker`` / ``dispatcher scheduler`` subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from dispatcher.config import Settings
from dispatcher.db import upgrade
from dispatcher.models import Delivery, Notification, Repository
from dispatcher.runtime import Runtime, create_runtime
from dispatcher.service import emit as producer
from dispatcher.service.emit import EmitResult
from dispatcher.worker.bell import doorbell_for
from tests.conftest import free_port, fresh_database_url
from tests.redisserver import RedisServer
from tests.smtpserver import Mailbox
from tests.smtpserver import smtp_server as running_smtp_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server on a free port for this run."""
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url()


@contextmanager
def running_redis(workdir: Path) -> Iterator[RedisServer]:
    """A private redis-server on a free port until the block ends."""
    try:
        server = RedisServer(free_port(), workdir)
    except FileNotFoundError:
        pytest.skip("redis-server not installed")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def pipeline_db(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_database: Callable[[], str]
) -> str:
    url = fresh_database_url(request.param, tmp_path, postgres_database)
    upgrade(url)
    return url


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


# -- HTTP receiver ----------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = 0.0  # time.monotonic() when the request had arrived

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records every request; answers ``status`` after ``delay`` seconds (503 to the first
    request for each path while ``fail_first`` is set)."""

    port: int
    requests: list[Received] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0
    fail_first: bool = False
    seen: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} requests, got {len(self.requests)}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as state:
        yield state


class _Server(ThreadingHTTPServer):
    # Room for a worker's burst of connections (the default backlog of 5 drops SYNs beyond
    # it, and the client's retry comes a second later: a delay that is not the sender's).
    request_queue_size = 128


@contextmanager
def receiving() -> Iterator[Receiver]:
    """A :class:`Receiver` listening on a free loopback port until the block ends."""
    state = Receiver(port=0)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            arrived = time.monotonic()
            if state.delay:
                time.sleep(state.delay)
            with state.lock:
                state.requests.append(
                    Received(self.path, dict(self.headers.items()), body, arrived)
                )
                status = state.status
                if state.fail_first and self.path not in state.seen:
                    status = 503
                state.seen.add(self.path)
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_args: Any) -> None:
            pass

    server = _Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


# -- SMTP -------------------------------------------------------------------------------------


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, Mailbox]]:
    with running_smtp_server() as server:
        yield server


# -- dispatcher processes ---------------------------------------------------------------------


def pipeline_env(database_url: str, broker_url: str, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCHER_")}
    env.update(
        {
            "DISPATCHER_DATABASE_URL": database_url,
            "DISPATCHER_BROKER_URL": broker_url,
            "DISPATCHER_ALLOWED_NETWORKS": "127.0.0.0/8",
            "DISPATCHER_SERVER_HOSTNAME": "quay.example.com",
            "DISPATCHER_PREFERRED_URL_SCHEME": "https",
            "DISPATCHER_RETRY_SCHEDULE": "0.2,0.2",
            "DISPATCHER_RETRY_JITTER": "0",
            "DISPATCHER_SWEEP_INTERVAL": "0.2",
            "DISPATCHER_RING_LEASE_SECONDS": "2",
            "DISPATCHER_LEASE_SECONDS": "15",
            "DISPATCHER_HTTP_TIMEOUT": "3",
            "DISPATCHER_LOG_LEVEL": "WARNING",
        }
    )
    env.update({f"DISPATCHER_{key.upper()}": value for key, value in overrides.items()})
    return env


@dataclass
class Pipeline:
    """A database, a broker, and the runtime a test emits through."""

    database_url: str
    broker_url: str
    runtime: Runtime
    overrides: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return pipeline_env(self.database_url, self.broker_url, **self.overrides)

    def start(
        self, command: str, *args: str, log: Path | None = None, **settings: str
    ) -> subprocess.Popen[bytes]:
        """``dispatcher command args`` in a session of its own, with ``settings`` over the
        pipeline's; its output goes to ``log`` (appended) or nowhere."""
        env = pipeline_env(self.database_url, self.broker_url, **{**self.overrides, **settings})
        with open(log or os.devnull, "ab") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "dispatcher", command, *args],
                env=env,
                stdout=output,
                stderr=output,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

    def emit(self, event: str = "repo_push", data: dict[str, Any] | None = None) -> EmitResult:
        """Report ``event`` for acme/web as a producer does, ringing the workers."""
        runtime = self.runtime
        return producer.emit(
            runtime.sessions,
            runtime.settings,
            runtime.doorbell,
            "acme/web",
            event,
            data if data is not None else {"updated_tags": ["v1"]},
        )

    def statuses(self) -> list[str]:
        """Every delivery's status, sorted."""
        with self.runtime.sessions() as session:
            return sorted(session.scalars(select(Delivery.status)).all())

    def notification(self, method: str, config: dict[str, Any], **extra: Any) -> int:
        with self.runtime.sessions.begin() as session:
            repository = session.query(Repository).filter_by(namespace="acme", name="web").first()
            if repository is None:
                repository = Repository(namespace="acme", name="web")
                session.add(repository)
                session.flush()
            notification = Notification(
                repository_id=repository.id,
                event=extra.pop("event", "repo_push"),
                method=method,
                config=config,
                event_config=extra.pop("event_config", {}),
                number_of_failures=0,
                **extra,
            )
            session.add(notification)
            session.flush()
            return notification.id


def new_pipeline(
    database_url: str,
    broker_url: str,
    *,
    producer_database_url: str | None = None,
    **overrides: str,
) -> Pipeline:
    """A :class:`Pipeline` whose processes use ``database_url`` and ``broker_url``; the test's
    own runtime uses ``producer_database_url`` if given (a way round a proxy the test cuts)."""
    env = pipeline_env(producer_database_url or database_url, broker_url, **overrides)
    settings = Settings(
        **{
            key.removeprefix("DISPATCHER_").lower(): value
            for key, value in env.items()
            if key.startswith("DISPATCHER_")
        }
    )
    runtime = create_runtime(settings, doorbell_for(settings))
    return Pipeline(database_url, broker_url, runtime, overrides)


@pytest.fixture
def make_pipeline(pipeline_db: str, redis_url: str) -> Iterator[Callable[..., Pipeline]]:
    made: list[Pipeline] = []
    db_index = iter(range(1, 16))

    def make(**overrides: str) -> Pipeline:
        broker = redis_url.rsplit("/", 1)[0] + f"/{next(db_index)}"
        pipeline = new_pipeline(pipeline_db, broker, **overrides)
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
        pipeline.stop_all()
        pipeline.runtime.close()
