"""One log stream: with ``DISPATCHER_LOG_FORMAT=json`` every line ``dispatcher serve``,
``dispatcher worker`` and ``dispatcher scheduler`` print is one JSON object, uvicorn's and
Celery's own lines included, and no token, signing secret or URL password is ever printed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from dispatcher.db import upgrade
from tests.cli.conftest import COMMAND
from tests.conftest import free_port

pytestmark = pytest.mark.integration

SECRET = "dsp_Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eA"


def json_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCHER_")}
    database = f"sqlite:///{tmp_path / 'dispatcher.db'}"
    upgrade(database)
    env.update(
        {
            "DISPATCHER_DATABASE_URL": database,
            "DISPATCHER_PORT": str(free_port()),
            "DISPATCHER_LOG_FORMAT": "json",
            "DISPATCHER_LOG_LEVEL": "INFO",
            "DISPATCHER_SWEEP_INTERVAL": "0.2",
        }
    )
    env.update(extra)
    return env


def lines_of(output: str) -> list[dict[str, Any]]:
    """Every line of ``output`` parsed as a JSON object (a line that is not one fails)."""
    parsed = []
    for line in output.splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
        assert isinstance(entry, dict), line
        assert {"time", "level", "logger", "message"} <= set(entry), line
        parsed.append(entry)
    return parsed


class Output:
    """The lines a process prints, collected by a thread as they come."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for(self, fragment: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(fragment in line for line in self.lines):
            assert self.process.poll() is None, "".join(self.lines)
            assert time.monotonic() < deadline, f"no {fragment!r} in {''.join(self.lines)}"
            time.sleep(0.05)

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)
        self._thread.join(10)
        assert self.process.stdout is not None
        self.process.stdout.close()
        return "".join(self.lines)


def start(command: str, env: dict[str, str]) -> Output:
    process = subprocess.Popen(
        [COMMAND, command], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    return Output(process)


def test_serve_prints_only_scrubbed_json_lines(tmp_path: Path) -> None:
    env = json_env(tmp_path)
    serve = start("serve", env)
    base = f"http://127.0.0.1:{env['DISPATCHER_PORT']}"
    try:
        serve.wait_for("Uvicorn running")
        with httpx.Client(base_url=base, timeout=5) as http:
            http.get(f"/healthz?token={SECRET}&access_token={SECRET}")
            http.get(
                "/api/v1/repository/acme/web/notification/",
                params={"token": SECRET},
                headers={"Authorization": f"Bearer {SECRET}", "X-Request-ID": "req-42"},
            )
            http.post(
                f"/api/v1/repository/acme/web/events?secret={SECRET}",
                content=b"{" * 10,
                headers={"Authorization": f"Bearer {SECRET}"},
            )
            http.get("/healthz", headers={"X-Big": "a" * 100_000})
    finally:
        output = serve.stop()
    assert SECRET not in output
    entries = lines_of(output)
    access = [entry for entry in entries if entry["logger"] == "uvicorn.access"]
    assert len(access) >= 3, output
    assert all(entry.get("request_id") for entry in access), access
    assert any(entry.get("request_id") == "req-42" for entry in access), access
    assert any("431" in entry["message"] or "header" in entry["message"] for entry in entries)
    assert any(entry["logger"] == "uvicorn.error" for entry in entries)


def test_worker_and_scheduler_print_only_json_lines(tmp_path: Path, redis_url: str) -> None:
    env = json_env(tmp_path, DISPATCHER_BROKER_URL=redis_url)
    worker, scheduler = start("worker", env), start("scheduler", env)
    try:
        worker.wait_for(" ready.")
        scheduler.wait_for("scheduler started")
    finally:
        outputs = [worker.stop(), scheduler.stop()]
    for output in outputs:
        lines_of(output)
    worker_lines = lines_of(outputs[0])
    assert any("shutdown" in entry["message"].lower() for entry in worker_lines), outputs[0]
