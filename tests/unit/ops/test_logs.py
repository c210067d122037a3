"""Logging: JSON lines, the attempt line, and no secret in any output."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator

import pytest

from dispatcher.config import Settings
from dispatcher.ops.logs import configure_logging, log_attempt, scrub
from dispatcher.senders.registry import describe_target

SECRETS = [
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "Bearer dsp_abcdefghijklmnop",
    "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX",
    "postgresql://user:hunter2@db/x",
    "https://example.com/hook?token=s3cr3t",
]
HIDDEN = ["MfKQ9r8G", "dsp_abcdefghijklmnop", "XXXXsecretXXXX", "hunter2", "s3cr3t"]


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield io.StringIO()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_the_attempt_fields(captured: io.StringIO) -> None:
    configure_logging(Settings(log_format="json"), captured)
    configure_logging(Settings(log_format="json"), captured)  # again: still one line per record

    log_attempt(
        delivery_id="d-1",
        notification_uuid="n-1",
        method="webhook",
        outcome="transient",
        status_code=503,
        latency_ms=12.345,
        target=describe_target("webhook", {"url": SECRETS[4], "secret": SECRETS[0]}),
        attempt=2,
        error="HTTP 503",
    )

    lines = captured.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["level"] == "WARNING" and entry["logger"] == "dispatcher.attempts"
    assert {k: entry[k] for k in ("delivery_id", "notification_uuid", "method", "outcome")} == {
        "delivery_id": "d-1",
        "notification_uuid": "n-1",
        "method": "webhook",
        "outcome": "transient",
    }
    assert (entry["status_code"], entry["latency_ms"], entry["attempt"]) == (503, 12.3, 2)
    assert entry["target"] == "https://example.com/hook?***"


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_secret_reaches_the_output(captured: io.StringIO, log_format: str) -> None:
    configure_logging(Settings(log_format=log_format), captured)
    log = logging.getLogger("dispatcher.test")
    for secret in SECRETS:
        log.warning("calling %s", secret)
    try:
        raise RuntimeError(f"failed with {SECRETS[0]}")
    except RuntimeError:
        log.exception("boom")

    output = captured.getvalue()
    assert output.count("calling") == len(SECRETS)
    for hidden in HIDDEN:
        assert hidden not in output


def test_scrub_and_describe_target() -> None:
    assert scrub("Authorization: Bearer abc.def") == "Authorization: Bearer ***"
    assert describe_target("slack", {"url": SECRETS[2]}) == "https://hooks.slack.com/***"
    assert describe_target("email", {"email": "ops@example.com"}) == "ops@example.com"


@pytest.mark.parametrize(
    "text",
    ["a" * 30_000, "x://" + "a" * 30_000, "password=" + "a" * 30_000, "bearer " * 5_000],
    ids=["letters", "scheme", "password", "bearers"],
)
def test_scrubbing_a_long_caller_supplied_line_takes_linear_time(text: str) -> None:
    """A URL path of 30,000 letters ends up in the access line; Python's engine needed
    seconds for the URL-password pattern on it, holding the interpreter."""
    started = time.perf_counter()
    scrub(text)
    assert time.perf_counter() - started < 0.1
