"""Settings, read from ``DISPATCHER_*`` environment variables.

Nothing here reads the environment at import time: call :func:`get_settings` (cached) or build a
:class:`Settings` directly (tests do). Every limit the service applies is a named field here.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Parse ``"90"``, ``"90s"``, ``"15m"``, ``"12h"``, ``"30d"`` or ``"2w"`` into seconds."""
    value = text.strip().lower()
    if not value:
        raise ValueError("empty duration")
    unit = value[-1]
    if unit in _DURATION_UNITS:
        number, factor = value[:-1], _DURATION_UNITS[unit]
    else:
        number, factor = value, 1
    try:
        seconds = float(number) * factor
    except ValueError:
        raise ValueError(f"invalid duration {text!r}: use e.g. 30s, 15m, 12h, 30d") from None
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r}: must be positive")
    return seconds


# The most messages per second a rate limit may name (config.rate_limit, DEFAULT_RATE_LIMIT).
MAX_RATE_LIMIT = 1000.0

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# The databases dispatcher runs on, by URL scheme, and the SQLAlchemy driver each one uses.
_DATABASE_DRIVERS = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}


def normalize_database_url(url: str) -> str:
    """``url`` with the driver dispatcher installs: ``postgres://`` and ``postgresql://`` (whose
    SQLAlchemy default, psycopg2, is not installed) become ``postgresql+psycopg://``.

    Raises ValueError naming the database when it is neither SQLite nor PostgreSQL. Messages
    never repeat the URL: it may hold a password."""
    scheme, separator, rest = url.strip().partition("://")
    if not separator:
        raise ValueError(
            "not a database URL; use sqlite:///PATH or postgresql://USER:PASSWORD@HOST/NAME"
        )
    driver = _DATABASE_DRIVERS.get(scheme.lower())
    if driver is None:
        name = scheme.partition("+")[0].lower()
        if name in ("postgres", "postgresql", "sqlite"):
            raise ValueError(
                f"driver {scheme!r} is not supported; use {name}:// (psycopg is built in)"
            )
        raise ValueError(f"database {name!r} is not supported; use SQLite or PostgreSQL")
    return f"{driver}://{rest}"


def packaged_templates_dir() -> Path:
    """The templates shipped in the package (``dispatcher.templates``), wherever it is installed:
    a wheel in site-packages, an editable checkout (its top-level ``templates/``) or an image."""
    root = files("dispatcher.templates")
    if not isinstance(root, Path):  # e.g. a zip import: Jinja's file loader needs a directory
        raise RuntimeError(
            f"dispatcher.templates is not a directory ({root}): set DISPATCHER_TEMPLATES_DIR"
        )
    return root


class Settings(BaseSettings):
    """All configuration of a dispatcher process. The README documents every field."""

    model_config = SettingsConfigDict(env_prefix="DISPATCHER_", extra="ignore")

    # storage and broker
    database_url: str = "sqlite:///dispatcher.db"
    broker_url: str | None = None

    # the API server
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_request_bytes: int = Field(default=1_048_576, ge=1024)
    max_header_bytes: int = Field(default=32_768, ge=1024)
    request_body_timeout: float = Field(default=10.0, gt=0)

    # what a caller may supply (see dispatcher.bounds)
    max_json_depth: int = Field(default=32, ge=2, le=128)
    max_config_bytes: int = Field(default=65_536, ge=1024)
    max_event_bytes: int = Field(default=1_048_576, ge=1024)
    max_expression_chars: int = Field(default=1024, ge=16, le=65_536)

    # the operator console (/console): the cookie-signing key (generated and kept in the
    # database when unset) and how long a sign-in lasts
    console_secret: SecretStr | None = Field(default=None, min_length=32)
    console_session_lifetime: str = "12h"
    console_page_size: int = Field(default=50, ge=1, le=500)
    console_poll_interval: float = Field(default=1.0, gt=0)

    # event data (Quay's SERVER_HOSTNAME / PREFERRED_URL_SCHEME)
    server_hostname: str = "localhost:8000"
    preferred_url_scheme: Literal["http", "https"] = "http"

    # delivery policy
    http_timeout: float = Field(default=10.0, gt=0)
    max_failures: int = Field(default=3, ge=1)
    retry_schedule: str = "10,60,300,1800,7200"
    retry_jitter: float = Field(default=0.2, ge=0, lt=1)
    retry_after_max: float = Field(default=3600.0, ge=0)
    allowed_networks: str = ""
    response_excerpt_bytes: int = Field(default=1024, ge=0)
    # where the operator hears of every failure notice of every repository
    notice_webhook: str | None = None
    notice_email: str | None = None
    # messages per second to one endpoint when neither its notification's config.rate_limit
    # nor its method (Slack: 1/s) says; None: as fast as the pool sends
    default_rate_limit: float | None = Field(default=None, gt=0, le=MAX_RATE_LIMIT)

    # worker and scheduler
    worker_batch_size: int = Field(default=200, ge=1)
    worker_send_concurrency: int = Field(default=128, ge=1)
    worker_per_host_concurrency: int = Field(default=64, ge=1)
    lease_seconds: float = Field(default=120.0, gt=0)
    sweep_interval: float = Field(default=1.0, gt=0)
    delivery_retention: str = "14d"
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"

    # email
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    mail_from: str = "dispatcher@localhost"
    # "required" (Quay's rule): an e-mail notification needs its address confirmed for the
    # repository first; "off" for closed deployments where admins may mail any address.
    email_authorization: Literal["required", "off"] = "required"

    # webhook TLS client certificate (Quay's ssl.cert / ssl.key)
    webhook_client_cert: Path | None = None
    webhook_client_key: Path | None = None

    templates_dir: Path = Field(default_factory=packaged_templates_dir)

    # delivery pipeline: doorbell, sender pool, recorder, sweep
    ring_lease_seconds: float = Field(default=30.0, gt=0)
    target_busy_delay: float = Field(default=1.0, ge=0)
    target_stuck_after: float = Field(default=5.0, gt=0)
    worker_max_queued: int = Field(default=2000, ge=1)
    worker_per_host_queued: int = Field(default=500, ge=1)
    record_batch_size: int = Field(default=500, ge=1)
    record_interval: float = Field(default=0.02, gt=0)
    record_backlog_max: int = Field(default=10_000, ge=1)
    drain_seconds: float = Field(default=5.0, gt=0)
    sweep_batch_limit: int = Field(default=10_000, ge=1)
    idempotency_window: str = "24h"
    worker_queue: str = "dispatcher"
    rate_limit_timeout: float = Field(default=0.25, gt=0)
    worker_task_events: bool = True

    # operating it: delivery log, retention, readiness, metrics
    delivery_log_default_limit: int = Field(default=20, ge=1)
    delivery_log_max_limit: int = Field(default=100, ge=1)
    recovery_batch_size: int = Field(default=500, ge=1)
    retention_interval: float = Field(default=3600.0, gt=0)
    retention_batch_size: int = Field(default=1000, ge=1)
    readiness_timeout: float = Field(default=2.0, gt=0)
    cli_progress_every: int = Field(default=50, ge=1)
    worker_metrics_host: str = "127.0.0.1"

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        return normalize_database_url(value)

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"{value!r} is not a log level; use one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("retry_schedule")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        _parse_schedule(value)
        return value

    @field_validator("allowed_networks")
    @classmethod
    def _check_networks(cls, value: str) -> str:
        _parse_networks(value)
        return value

    @field_validator("notice_webhook")
    @classmethod
    def _check_notice_webhook(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("notice_email")
    @classmethod
    def _check_notice_email(cls, value: str | None) -> str | None:
        if not value:
            return None
        local, at, domain = value.partition("@")
        if not (local and at and domain) or any(c.isspace() for c in value) or "@" in domain:
            raise ValueError("must be one e-mail address, like ops@example.com")
        return value

    @field_validator("lease_seconds")
    @classmethod
    def _check_lease(cls, value: float, info: ValidationInfo) -> float:
        # A claimed delivery is sent only if it can time out before its lease ends (or a
        # second worker could send it too); a shorter lease would hand every claim back.
        timeout = info.data.get("http_timeout")
        if timeout is not None and value <= timeout + 1:
            raise ValueError(
                f"must be more than DISPATCHER_HTTP_TIMEOUT + 1 ({timeout + 1:g} s): a claimed "
                "delivery must be able to time out before its lease ends"
            )
        return value

    @field_validator("delivery_retention", "console_session_lifetime", "idempotency_window")
    @classmethod
    def _check_duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def retry_delays(self) -> tuple[float, ...]:
        """Seconds to wait before each retry; its length is the number of retries."""
        return _parse_schedule(self.retry_schedule)

    @property
    def networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """The CIDR ranges that webhook and Slack targets may use despite being non-public."""
        return _parse_networks(self.allowed_networks)

    @property
    def retention_seconds(self) -> float:
        return parse_duration(self.delivery_retention)

    @property
    def idempotency_seconds(self) -> float:
        return parse_duration(self.idempotency_window)

    @property
    def console_session_seconds(self) -> float:
        return parse_duration(self.console_session_lifetime)

    @property
    def embedded(self) -> bool:
        """True when no broker is configured: the API process also runs worker and scheduler."""
        return not self.broker_url

    @property
    def redis_broker(self) -> bool:
        """True when the broker is Redis: workers share the ring flag and rate limits there."""
        return (self.broker_url or "").startswith(("redis://", "rediss://", "unix://"))


# Both parsers are pure and read on every delivery attempt: parse each text once.
@lru_cache(maxsize=16)
def _parse_schedule(value: str) -> tuple[float, ...]:
    parts = [part.strip() for part in value.split(",") if part.strip()]
    try:
        delays = [float(part) for part in parts]
    except ValueError:
        raise ValueError(
            f"retry_schedule {value!r} must be comma-separated seconds, e.g. 10,60,300"
        ) from None
    if any(delay < 0 for delay in delays):
        raise ValueError("retry_schedule values must not be negative")
    return tuple(delays)


@lru_cache(maxsize=16)
def _parse_networks(value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for part in value.split(","):
        if part.strip():
            try:
                networks.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise ValueError(f"allowed_networks: {part.strip()!r} is not a CIDR") from None
    return tuple(networks)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
