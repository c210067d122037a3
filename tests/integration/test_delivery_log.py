"""The delivery log and redelivery through real parts: emit → Redis → a prefork
``dispatcher worker`` → an HTTP receiver; the log read over the API, redelivered over the API
and the CLI; the worker's metrics endpoint summing its children."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dispatcher.models import Notification
from dispatcher.runtime import Runtime
from dispatcher.service import emit as producer
from dispatcher.service import tokens
from tests.conftest import free_port
from tests.integration.conftest import Pipeline, Receiver

pytestmark = pytest.mark.integration


def wait_for(fetch: Callable[[], Any], accept: Callable[[Any], bool], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if accept(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def attempts_counted(port: int) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return -1
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "dispatcher_delivery_attempts_total" and sample.labels == {
                "method": "webhook",
                "outcome": "succeeded",
            }:
                return sample.value
    return 0


def test_log_redeliver_and_worker_metrics(
    make_pipeline: Callable[..., Pipeline],
    receiver: Receiver,
    client_for: Callable[[Runtime], httpx.Client],
) -> None:
    metrics_port = free_port()
    pipeline = make_pipeline(worker_metrics_port=str(metrics_port))
    runtime = pipeline.runtime
    notification_id = pipeline.notification("webhook", {"url": receiver.url("/hook")})
    with runtime.sessions.begin() as session:
        uuid = session.get_one(Notification, notification_id).uuid
        _, secret = tokens.create_token(session, scopes=("repo:admin",), grants=("acme/*",))
    headers = {"Authorization": f"Bearer {secret}"}
    log = f"/api/v1/repository/acme/web/notification/{uuid}/deliveries"
    pipeline.start("worker", "--pool", "prefork", "--concurrency", "2")
    api = client_for(runtime)

    producer.emit(
        runtime.sessions,
        runtime.settings,
        runtime.doorbell,
        "acme/web",
        "repo_push",
        {"updated_tags": ["v1"]},
    )
    (first,) = receiver.wait_for(1)

    page = wait_for(
        lambda: api.get(log, headers=headers).json(),
        lambda body: body["deliveries"] and body["deliveries"][0]["status"] == "succeeded",
    )
    (original,) = page["deliveries"]
    assert original["status"] == "succeeded", page
    assert first.headers["webhook-id"] == original["id"]
    (attempt,) = original["attempts"]
    assert attempt["status_code"] == 200 and attempt["response_excerpt"] == "ok"
    assert attempt["latency_ms"] > 0

    created = api.post(f"{log}/{original['id']}/redeliver", headers=headers)
    assert created.status_code == 201, created.text
    second = receiver.wait_for(2)[1]
    assert second.headers["webhook-id"] == created.json()["id"] != original["id"]
    assert second.body == first.body

    cli = subprocess.run(
        [sys.executable, "-m", "dispatcher", "deliveries", "redeliver", original["id"]],
        env=pipeline.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    third = receiver.wait_for(3)[2]
    assert third.headers["webhook-id"] == cli.stdout.split()[2]

    statuses = wait_for(
        lambda: [d["status"] for d in api.get(log, headers=headers).json()["deliveries"]],
        lambda values: values == ["succeeded"] * 3,
    )
    assert statuses == ["succeeded"] * 3
    assert wait_for(lambda: attempts_counted(metrics_port), lambda value: value == 3) == 3
