"""What the API process prints: a traceback is one scrubbed JSON line carrying its request id,
and database errors never show statement parameters."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from dispatcher.api import create_app
from dispatcher.models import AccessToken
from dispatcher.ops.logs import configure_logging
from dispatcher.runtime import create_runtime
from tests.conftest import serving, settings_for

SECRET = "dsp_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield io.StringIO()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_an_unexpected_error_is_logged_as_scrubbed_json_lines_with_the_request_id(
    database_url: str, captured: io.StringIO
) -> None:
    settings = settings_for(database_url, log_format="json", log_level="INFO")
    runtime = create_runtime(settings)
    app = create_app(runtime)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError(f"failed with Bearer {SECRET} at postgresql://app:pw123@db/x")

    configure_logging(settings, captured)
    try:
        with serving(runtime, app) as base, httpx.Client(base_url=base) as http:
            response = http.get(f"/boom?token={SECRET}", headers={"X-Request-ID": "trace-7"})
    finally:
        runtime.close()
    assert response.status_code == 500
    assert response.json()["detail"] == "Internal server error"
    output = captured.getvalue()
    assert SECRET not in output and "pw123" not in output
    entries = [json.loads(line) for line in output.splitlines() if line.strip()]
    tracebacks = [entry for entry in entries if "exception" in entry]
    assert {entry["logger"] for entry in tracebacks} >= {"dispatcher.api.problems", "uvicorn.error"}
    assert all("RuntimeError" in entry["exception"] for entry in tracebacks)
    assert all(entry["request_id"] == "trace-7" for entry in tracebacks)
    access = [entry for entry in entries if entry["logger"] == "uvicorn.access"]
    assert access and access[0]["request_id"] == "trace-7"
    assert "token=***" in access[0]["message"]


def test_database_errors_never_show_statement_parameters(database_url: str) -> None:
    runtime = create_runtime(settings_for(database_url))
    row = {"token_hash": "f" * 64, "scopes": [], "grants": [], "name": SECRET}
    try:
        with runtime.engine.begin() as conn:
            conn.execute(insert(AccessToken), [row])
        with pytest.raises(IntegrityError) as raised, runtime.engine.begin() as conn:
            conn.execute(insert(AccessToken), [row])
        assert SECRET not in str(raised.value)
        assert "hidden" in str(raised.value)
    finally:
        with runtime.engine.begin() as conn:
            conn.execute(AccessToken.__table__.delete())
        runtime.close()
