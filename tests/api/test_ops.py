"""Operating the API: /healthz, /readyz, /metrics, and 503 while the database is away."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dispatcher.db import upgrade
from dispatcher.models import utcnow
from dispatcher.runtime import Runtime, create_runtime
from dispatcher.service import tokens
from tests.conftest import free_port, settings_for
from tests.deliverylog import add_delivery, add_notification
from tests.doubles import RecordingDoorbell
from tests.tcpproxy import TCPProxy

LOG_ROUTE = "/api/v1/repository/{namespace}/{repository}/notification/{uuid}/deliveries"


@pytest.fixture
def sqlite_runtime(tmp_path: Path) -> Iterator[Runtime]:
    url = f"sqlite:///{tmp_path / 'ops.db'}"
    upgrade(url)
    runtime = create_runtime(settings_for(url), doorbell=RecordingDoorbell())
    yield runtime
    runtime.close()


ClientFor = Callable[[Runtime], httpx.Client]


def admin_header(runtime: Runtime) -> dict[str, str]:
    with runtime.sessions.begin() as session:
        _, secret = tokens.create_token(session, scopes=("repo:admin",), grants=("*",))
    return {"Authorization": f"Bearer {secret}"}


def scrape(client: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def requests_seen(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], **labels: str
) -> float:
    key = ("dispatcher_http_requests_total", tuple(sorted(labels.items())))
    return samples.get(key, 0.0)


def test_healthz(sqlite_runtime: Runtime, client_for: ClientFor) -> None:
    response = client_for(sqlite_runtime).get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_request_counters_move_by_route_template(
    sqlite_runtime: Runtime, client_for: ClientFor
) -> None:
    client = client_for(sqlite_runtime)
    with sqlite_runtime.sessions.begin() as session:
        uuid = add_notification(session).uuid
    headers = admin_header(sqlite_runtime)
    before = scrape(client)

    client.get("/healthz")
    client.get("/healthz")
    assert (
        client.get(
            f"/api/v1/repository/acme/web/notification/{uuid}/deliveries", headers=headers
        ).status_code
        == 200
    )
    assert (
        client.get(f"/api/v1/repository/acme/web/notification/{uuid}/deliveries").status_code == 401
    )
    client.get("/no/such/path")

    after = scrape(client)
    healthz = {"route": "/healthz", "method": "GET", "status": "200"}
    assert requests_seen(after, **healthz) - requests_seen(before, **healthz) == 2
    for status in ("200", "401"):
        log = {"route": LOG_ROUTE, "method": "GET", "status": status}
        assert requests_seen(after, **log) - requests_seen(before, **log) == 1
    unmatched = {"route": "<unmatched>", "method": "GET", "status": "404"}
    assert requests_seen(after, **unmatched) - requests_seen(before, **unmatched) == 1
    latency = (
        "dispatcher_http_request_duration_seconds_count",
        (("method", "GET"), ("route", "/healthz")),
    )
    assert after[latency] - before.get(latency, 0.0) == 2


def test_queue_gauges_come_from_the_database(
    sqlite_runtime: Runtime, client_for: ClientFor
) -> None:
    with sqlite_runtime.sessions.begin() as session:
        notification = add_notification(session)
        add_delivery(
            session,
            notification,
            status="pending",
            attempts=0,
            created_at=utcnow() - timedelta(minutes=5),
        )
        add_delivery(session, notification, status="pending", attempts=0)
        add_delivery(session, notification, status="succeeded")

    samples = scrape(client_for(sqlite_runtime))

    assert samples[("dispatcher_pending_deliveries", (("method", "webhook"),))] == 2
    age = samples[("dispatcher_oldest_pending_delivery_age_seconds", ())]
    assert 299 <= age < 400


def test_readyz_is_503_when_the_database_is_unreachable(client_for: ClientFor) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x"
    runtime = create_runtime(settings_for(url), doorbell=RecordingDoorbell())
    try:
        response = client_for(runtime).get("/readyz")
    finally:
        runtime.close()
    assert response.status_code == 503
    body = response.json()
    assert body["error_type"] == "service_unavailable"
    assert body["detail"].startswith("database unreachable")
    assert "127.0.0.1" not in body["detail"]


def test_readyz_checks_the_broker_only_when_configured(
    sqlite_runtime: Runtime, client_for: ClientFor
) -> None:
    client = client_for(sqlite_runtime)
    assert client.get("/readyz").json() == {"status": "ok"}
    sqlite_runtime.settings = sqlite_runtime.settings.model_copy(
        update={"broker_url": f"redis://127.0.0.1:{free_port()}/0", "readiness_timeout": 0.5}
    )
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["detail"] == "broker unreachable (ConnectionError)"
    sqlite_runtime.settings = sqlite_runtime.settings.model_copy(
        update={"broker_url": "redis://127.0.0.1:6379/0"}
    )
    assert client.get("/readyz").status_code == 200


def test_api_answers_503_while_the_database_is_away_and_recovers(
    postgres_database: Callable[[], str], client_for: ClientFor
) -> None:
    real = postgres_database()
    upgrade(real)
    proxy = TCPProxy(("127.0.0.1", 5432))
    proxy.start()
    proxied = real.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    runtime = create_runtime(settings_for(proxied), doorbell=RecordingDoorbell())
    client = client_for(runtime)
    try:
        headers = admin_header(runtime)
        with runtime.sessions.begin() as session:
            uuid = add_notification(session).uuid
        log = f"/api/v1/repository/acme/web/notification/{uuid}/deliveries"
        assert client.get("/readyz").status_code == 200
        assert client.get(log, headers=headers).status_code == 200

        proxy.stop()
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["detail"].startswith("database unreachable")
        down = client.get(log, headers=headers)
        assert down.status_code == 503, down.text
        assert down.json()["error_type"] == "service_unavailable"
        assert "database" in down.json()["detail"].lower()
        assert client.get("/healthz").status_code == 200

        proxy.start()
        assert client.get("/readyz").status_code == 200
        assert client.get(log, headers=headers).status_code == 200
    finally:
        proxy.stop()
        runtime.close()


def test_readyz_names_templates_that_cannot_be_loaded(
    sqlite_runtime: Runtime, client_for: ClientFor, tmp_path: Path
) -> None:
    client = client_for(sqlite_runtime)
    assert client.get("/readyz").status_code == 200
    broken = tmp_path / "broken"
    shutil.copytree(sqlite_runtime.settings.templates_dir, broken)
    (broken / "slack" / "_default.txt").write_text("{{ summary ")
    for templates, cause in (
        (tmp_path / "missing", "email/_default.txt: TemplateNotFound"),
        (broken, "slack/_default.txt: TemplateSyntaxError"),
    ):
        sqlite_runtime.settings = sqlite_runtime.settings.model_copy(
            update={"templates_dir": templates}
        )
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["detail"] == f"templates cannot be loaded from {templates} ({cause})"


def test_the_template_check_needs_nothing_imported_before_it() -> None:
    """A process that has sent nothing yet (an API with a broker) checks its templates too."""
    check = "from dispatcher import config; from dispatcher.ops import health; "
    check += "print(health.check_templates(config.Settings().templates_dir))"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None"
