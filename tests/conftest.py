"""Shared fixtures: a database per backend (SQLite file and a per-run PostgreSQL database),
a live API server on loopback per backend, and token helpers.

Every test that takes ``database_url`` runs once on SQLite and once on PostgreSQL. PostgreSQL
is the machine's server (``DISPATCHER_TEST_POSTGRES``, default postgres@127.0.0.1:5432); the
test run creates its own database and drops it at the end.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import text

from dispatcher.api import create_app
from dispatcher.api.server import server_config
from dispatcher.config import Settings
from dispatcher.db import Base, upgrade
from dispatcher.runtime import Runtime, create_runtime
from dispatcher.service import tokens
from tests.doubles import RecordingDoorbell
from tests.tcpproxy import TCPProxy

POSTGRES_ADMIN = os.environ.get(
    "DISPATCHER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ["sqlite", "postgresql"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[Callable[[], str]]:
    """A factory of fresh PostgreSQL databases for this run; all are dropped at the end."""
    created: list[str] = []

    def make() -> str:
        name = f"dispatcher_test_{secrets.token_hex(4)}"
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        base = POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        return f"{base}/{name}"

    yield make
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fresh_database_url(backend: str, tmp: Path, postgres: Callable[[], str]) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp / f'dispatcher-{secrets.token_hex(4)}.db'}"
    return postgres()


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_database: Callable[[], str],
) -> str:
    """One migrated database per backend for the whole run; tests empty it after use."""
    url = fresh_database_url(request.param, tmp_path_factory.mktemp("db"), postgres_database)
    upgrade(url)
    return url


def settings_for(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "server_hostname": "quay.example.com",
        "preferred_url_scheme": "https",
        "allowed_networks": "",
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def empty_tables(runtime: Runtime) -> None:
    with runtime.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(text(f"DELETE FROM {table.name}"))


@dataclass
class LiveServer:
    runtime: Runtime
    base_url: str


@pytest.fixture(scope="session")
def live_server(database_url: str) -> Iterator[LiveServer]:
    """The API on a real loopback port, on this backend's database."""
    runtime = create_runtime(settings_for(database_url), doorbell=RecordingDoorbell())
    with serving(runtime) as base_url:
        yield LiveServer(runtime=runtime, base_url=base_url)
    runtime.close()


@contextmanager
def serving(
    runtime: Runtime, app: FastAPI | None = None, *, port: int | None = None
) -> Iterator[str]:
    """The API of ``runtime`` (or ``app``) served as ``dispatcher serve`` serves it (same
    protocol, limits and logging set-up) on ``port`` or a free loopback port; yields its
    base URL."""
    port = port or free_port()
    app = app or create_app(runtime)
    config = server_config(app, runtime.settings, host="127.0.0.1", port=port)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("API server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def client_for() -> Iterator[Callable[[Runtime], httpx.Client]]:
    """Makes an HTTP client of the API on ``runtime``, served on loopback for this test."""
    with ExitStack() as stack:

        def make(runtime: Runtime) -> httpx.Client:
            base_url = stack.enter_context(serving(runtime))
            return stack.enter_context(httpx.Client(base_url=base_url, timeout=10))

        yield make


@pytest.fixture
def server(live_server: LiveServer) -> Iterator[LiveServer]:
    """The live server, with its database emptied after the test."""
    doorbell = live_server.runtime.doorbell
    assert isinstance(doorbell, RecordingDoorbell)
    doorbell.rung.clear()
    yield live_server
    empty_tables(live_server.runtime)


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        yield client


MakeToken = Callable[..., str]


@pytest.fixture
def make_token(server: LiveServer) -> MakeToken:
    """Create a token in the server's database and return its secret."""

    def make(
        scopes: tuple[str, ...] = ("repo:admin",),
        grants: tuple[str, ...] = ("acme/web",),
        expires_in: float | None = None,
        revoked: bool = False,
        name: str | None = None,
    ) -> str:
        with server.runtime.sessions.begin() as session:
            token, secret = tokens.create_token(
                session, scopes=scopes, grants=grants, expires_in=expires_in, name=name
            )
            if revoked:
                tokens.revoke_token(session, token.id)
        return secret

    return make


@pytest.fixture
def proxied_postgres(postgres_database: Callable[[], str]) -> Iterator[tuple[str, TCPProxy]]:
    """A fresh migrated PostgreSQL database reached through a TCP proxy the test can stop (the
    database goes away) and start again: ``(url through the proxy, proxy)``."""
    direct = postgres_database()
    upgrade(direct)
    proxy = TCPProxy(("127.0.0.1", 5432))
    proxy.start()
    try:
        yield direct.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"), proxy
    finally:
        proxy.stop()
