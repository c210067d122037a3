"""The embedded default end to end, as the README's first notification does it: no broker, a
SQLite file, ``dispatcher serve`` running the API, a worker and the sweep in one process; a
token made by ``dispatcher tokens create``, a test delivery over the API, and an event from a
separate ``dispatcher emit`` process that only the embedded sweep can pick up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import COMMAND
from tests.conftest import free_port
from tests.integration.conftest import Receiver

pytestmark = pytest.mark.integration

QUAY_FIELDS = {"repository", "namespace", "name", "docker_url", "homepage"}


@pytest.fixture
def embedded_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCHER_")}
    env.update(
        {
            "DISPATCHER_DATABASE_URL": f"sqlite:///{tmp_path / 'dispatcher.db'}",
            "DISPATCHER_ALLOWED_NETWORKS": "127.0.0.0/8",
            "DISPATCHER_PORT": str(free_port()),
            "DISPATCHER_SERVER_HOSTNAME": "quay.example.com",
            "DISPATCHER_SWEEP_INTERVAL": "0.2",
            "DISPATCHER_LOG_LEVEL": "WARNING",
        }
    )
    return env


def run(env: dict[str, str], *args: str, command: str = COMMAND, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [command, *args], env=env, capture_output=True, text=True, timeout=30, check=False, cwd=cwd
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@contextmanager
def serving(
    env: dict[str, str], log_path: Path, command: str = COMMAND
) -> Iterator[subprocess.Popen[bytes]]:
    """``dispatcher serve`` on its port, once /healthz answers; killed if still up at the end.
    Runs in the log's directory."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [command, "serve"], env=env, stdout=log, stderr=log, cwd=log_path.parent
        )
        try:
            url = f"http://127.0.0.1:{env['DISPATCHER_PORT']}/healthz"
            deadline = time.monotonic() + 15
            while not _healthy(url):
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "dispatcher serve did not answer /healthz"
                time.sleep(0.05)
            yield process
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(5)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_serve_delivers_tests_and_events_from_other_processes(
    embedded_env: dict[str, str], receiver: Receiver, tmp_path: Path
) -> None:
    token = run(embedded_env, "tokens", "create", "--scope", "repo:admin", "--repo", "acme/*")
    run(embedded_env, "repos", "add", "acme/web")
    base = f"http://127.0.0.1:{embedded_env['DISPATCHER_PORT']}/api/v1/repository/acme/web"
    log_path = tmp_path / "serve.log"
    with (
        serving(embedded_env, log_path) as server,
        httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token.strip()}"}, timeout=10
        ) as api,
    ):
        created = api.post(
            "/notification/",
            json={
                "event": "repo_push",
                "method": "webhook",
                "config": {"url": receiver.url("/hook")},
                "eventConfig": {},
            },
        )
        assert created.status_code == 201, created.text
        uuid = created.json()["uuid"]

        assert api.post(f"/notification/{uuid}/test").status_code == 201
        (sample,) = receiver.wait_for(1, timeout=10)
        body = sample.json()
        assert body.keys() >= QUAY_FIELDS
        assert body["repository"] == "acme/web"
        assert body["updated_tags"] == ["latest", "foo"]
        (logged,) = api.get(f"/notification/{uuid}/deliveries").json()["deliveries"]
        assert logged["is_test"] is True
        assert sample.headers["webhook-id"] == logged["id"]

        emitted = run(
            embedded_env,
            "emit",
            "acme/web",
            "repo_push",
            "--data",
            '{"updated_tags": ["v1"]}',
            "--json",
        )
        assert json.loads(emitted)["deliveries"] == 1
        _, pushed = receiver.wait_for(2, timeout=10)
        assert pushed.json()["updated_tags"] == ["v1"]
        newest = api.get(f"/notification/{uuid}/deliveries").json()["deliveries"][0]
        assert newest["is_test"] is False
        assert pushed.headers["webhook-id"] == newest["id"]

        server.send_signal(signal.SIGTERM)
        assert server.wait(10) == 0, log_path.read_text()
