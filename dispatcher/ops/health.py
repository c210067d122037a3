"""Readiness checks: can this process reach its database and its broker, and load its templates?

Each check returns None when the dependency answers, or a short reason a person can act on.
Reasons name the failing dependency and the error's type, never a URL (it may hold a password).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from dispatcher.config import Settings


def check_database(engine: Engine) -> str | None:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return f"database unreachable ({type(exc).__name__})"
    return None


def check_broker(settings: Settings) -> str | None:
    """Skipped (None) when no broker is configured: the embedded shape has none to reach."""
    url = settings.broker_url
    if not url:
        return None
    scheme = urlsplit(url).scheme
    try:
        if scheme in ("redis", "rediss", "unix"):
            _ping_redis(url, settings.readiness_timeout)
        elif scheme != "memory":
            _connect_kombu(url, settings.readiness_timeout)
    # Any failure to connect, whatever the transport raises, means "not ready".
    except Exception as exc:
        return f"broker unreachable ({type(exc).__name__})"
    return None


# The templates every e-mail and Slack message falls back to: without them nothing renders.
FALLBACK_TEMPLATES = ("email/_default.txt", "email/_default.html", "slack/_default.txt")


def check_templates(templates_dir: Path) -> str | None:
    """The message templates load and compile (names the directory: it holds no secret)."""
    import jinja2

    from dispatcher.senders.rendering import environments

    env = environments(templates_dir).text
    for name in FALLBACK_TEMPLATES:
        try:
            env.get_template(name)
        except jinja2.TemplateError as exc:
            return f"templates cannot be loaded from {templates_dir} ({name}: {type(exc).__name__})"
    return None


def readiness_problems(engine: Engine, settings: Settings) -> list[str]:
    """Every reason this process is not ready; empty when it is."""
    reasons = [
        check_database(engine),
        check_broker(settings),
        check_templates(settings.templates_dir),
    ]
    return [reason for reason in reasons if reason is not None]


def _ping_redis(url: str, timeout: float) -> None:
    from dispatcher.ops.redis_client import connect  # loads redis only when it is asked about

    client = connect(url, timeout)
    try:
        client.ping()
    finally:
        client.close()


def _connect_kombu(url: str, timeout: float) -> None:
    from kombu.connection import Connection

    with Connection(url, connect_timeout=timeout) as connection:  # type: ignore[no-untyped-call]
        connection.ensure_connection(max_retries=1, timeout=timeout)
