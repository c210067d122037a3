"""Real parts for the pipeline's integration tests: a private redis-server, a database per
backend (SQLite file, per-run PostgreSQL database), an HTTP receiver and an SMTP server on
loopback, and ``dispatcher worker`` / ``dispatcher scheduler`` subprocesses."""

from __future__ import annotations

import json
import os
import shutil
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

from dispatcher.config import Settings
from dispatcher.db import upgrade
from dispatcher.models import Notification, Repository
from dispatcher.runtime import Runtime, create_runtime
from dispatcher.worker.bell import doorbell_for
from tests.conftest import free_port, fresh_database_url
from tests.smtpserver import Mailbox
from tests.smtpserver import smtp_server as running_smtp_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server on a free port for this run."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(10)


@pytest.fixture(params=["sqlite", "postgresql"])
def pipeline_db(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_database: Callable[[], str]
) -> str:
    url = fresh_database_url(request.param, tmp_path, postgres_database)
    upgrade(url)
    return url


# -- HTTP receiver ----------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records every request; answers ``status`` after ``delay`` seconds."""

    port: int
    requests: list[Received] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0
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


@contextmanager
def receiving() -> Iterator[Receiver]:
    """A :class:`Receiver` listening on a free loopback port until the block ends."""
    state = Receiver(port=0)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            if state.delay:
                time.sleep(state.delay)
            with state.lock:
                state.requests.append(Received(self.path, dict(self.headers.items()), body))
                status = state.status
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
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

    def start(self, command: str, *args: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "dispatcher", command, *args],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
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


@pytest.fixture
def make_pipeline(pipeline_db: str, redis_url: str) -> Iterator[Callable[..., Pipeline]]:
    made: list[Pipeline] = []
    db_index = iter(range(1, 16))

    def make(**overrides: str) -> Pipeline:
        broker = redis_url.rsplit("/", 1)[0] + f"/{next(db_index)}"
        env = pipeline_env(pipeline_db, broker, **overrides)
        settings = Settings(
            **{
                key.removeprefix("DISPATCHER_").lower(): value
                for key, value in env.items()
                if key.startswith("DISPATCHER_")
            }
        )
        runtime = create_runtime(settings, doorbell_for(settings))
        pipeline = Pipeline(pipeline_db, broker, runtime, overrides)
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
        pipeline.stop_all()
        pipeline.runtime.close()
