"""Settings refuse values a worker cannot run with, naming the variable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dispatcher.config import Settings


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("retry_after_max", "-1"),
        ("response_excerpt_bytes", "-1"),
        ("ring_lease_seconds", "0"),
        ("target_busy_delay", "-0.5"),
        ("worker_max_queued", "0"),
        ("worker_per_host_queued", "0"),
        ("record_batch_size", "0"),
        ("record_interval", "0"),
        ("sweep_batch_limit", "0"),
        ("worker_send_concurrency", "0"),
        ("worker_per_host_concurrency", "0"),
        ("worker_batch_size", "0"),
        ("default_rate_limit", "0"),
        ("default_rate_limit", "-1"),
        ("default_rate_limit", "1000.5"),
        ("rate_limit_timeout", "0"),
    ],
)
def test_pipeline_settings_out_of_range_are_refused(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"DISPATCHER_{name.upper()}", value)
    with pytest.raises(ValidationError, match=name):
        Settings()


def test_a_lease_must_outlast_a_send() -> None:
    assert Settings(http_timeout=10, lease_seconds=11.5).lease_seconds == 11.5
    with pytest.raises(ValidationError, match="HTTP_TIMEOUT"):
        Settings(http_timeout=10, lease_seconds=11)
    with pytest.raises(ValidationError, match="HTTP_TIMEOUT"):
        Settings(http_timeout=3, lease_seconds=2)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("notice_webhook", "ftp://ops.example/notices"),
        ("notice_webhook", "ops.example/notices"),
        ("notice_webhook", "https://"),
        ("notice_email", "ops"),
        ("notice_email", "ops@"),
        ("notice_email", "ops@example.com, dev@example.com"),
        ("notice_email", "a@b@example.com"),
    ],
)
def test_notice_targets_must_be_a_url_and_an_address(name: str, value: str) -> None:
    with pytest.raises(ValidationError, match=name):
        Settings(**{name: value})


def test_notice_targets_are_optional() -> None:
    settings = Settings(notice_webhook="https://ops.example/hook", notice_email="ops@example.com")
    assert (settings.notice_webhook, settings.notice_email) == (
        "https://ops.example/hook",
        "ops@example.com",
    )
    assert Settings(notice_webhook="", notice_email="").notice_webhook is None
