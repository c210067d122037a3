"""The console in the distributed shape: ``dispatcher serve`` with a broker runs no worker, so
a test pressed in the console reaches a separate ``dispatcher worker`` through Redis, and the
console shows its outcome."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import httpx
import pytest

from dispatcher.service import repositories, tokens
from tests.conftest import free_port
from tests.console.client import Console
from tests.integration.conftest import Pipeline, Receiver

pytestmark = pytest.mark.integration


def wait_healthy(base_url: str, pipeline: Pipeline) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(base_url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert all(p.poll() is None for p in pipeline.processes), "a process exited"
        assert time.monotonic() < deadline, "dispatcher serve did not answer /healthz"
        time.sleep(0.05)


def test_a_console_test_is_delivered_by_a_separate_worker(
    make_pipeline: Callable[..., Pipeline], receiver: Receiver
) -> None:
    port = free_port()
    pipeline = make_pipeline(port=str(port))
    with pipeline.runtime.sessions.begin() as session:
        repositories.add_repository(session, "acme/web")
        _, secret = tokens.create_token(session, scopes=["repo:admin"], grants=["acme/*"])
    pipeline.start("serve")
    base_url = f"http://127.0.0.1:{port}"
    wait_healthy(base_url, pipeline)

    console = Console(base_url)
    try:
        assert console.sign_in(secret).status_code == 303
        created = console.post(
            "/repository/acme/web/notification/",
            {"event": "repo_push", "method": "webhook", "config.webhook.url": receiver.url()},
        )
        assert created.status_code == 303, created.text[-500:]
        notification = created.headers["location"].removeprefix("/console").split("?")[0]
        assert console.post(notification + "/test").status_code == 303
        # A negative check needs a wait: an embedded worker would have sent it by now.
        time.sleep(0.5)
        assert receiver.requests == [], "serve must not deliver when a broker is set"
        pipeline.start("worker")
        (request,) = receiver.wait_for(1)
        deadline = time.monotonic() + 10
        while 'data-status="succeeded"' not in (page := console.get(notification).text):
            assert time.monotonic() < deadline, page[-800:]
            time.sleep(0.1)
        found = re.search(r'data-delivery="([^"]+)"', page)
        assert found and request.headers["webhook-id"] == found.group(1)
    finally:
        console.close()
