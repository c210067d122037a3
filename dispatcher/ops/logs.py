"""Logging: text or one JSON object per line, one structured line per delivery attempt, and
never a secret.

For the delivery pipeline: after an attempt is recorded, call::

    log_attempt(
        delivery_id=..., notification_uuid=..., method=..., outcome=...,  # str
        status_code=...,  # int | None
        latency_ms=...,   # float
        target=describe_target(method, config),  # dispatcher.senders.registry's
        attempt=...,      # int | None, the attempt's number
        error=...,        # str | None, already trimmed
    )

It logs on ``dispatcher.attempts`` at INFO (WARNING when the outcome is not ``succeeded``).

:func:`configure_logging` installs one handler on the root logger with a :class:`SecretFilter`
and a formatter that scrubs the final text too (tracebacks included): ``whsec_…`` signing
secrets, bearer tokens (and ``dsp_…`` token secrets), Slack hook paths, passwords in URLs.
Every line of the process goes through it: uvicorn's and Celery's loggers propagate to the
root, warnings are captured, and uncaught exceptions (of any thread) are logged, not printed.
A line logged while a request or a delivery is being handled carries its ``request_id`` or
``delivery_id`` (:data:`REQUEST_ID`, :data:`DELIVERY_ID`).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from contextvars import ContextVar
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TextIO

from dispatcher.bounds import linear
from dispatcher.config import Settings
from dispatcher.vocabulary import AttemptResult

ATTEMPT_LOGGER = "dispatcher.attempts"
FAILURES_LOGGER = "dispatcher.failures"
MASK = "***"

# The request an API line belongs to, and the delivery a worker line belongs to.
REQUEST_ID: ContextVar[str | None] = ContextVar("dispatcher_request_id", default=None)
DELIVERY_ID: ContextVar[str | None] = ContextVar("dispatcher_delivery_id", default=None)

# On RE2: a log line may carry a caller's text (a URL path of 30,000 letters), and Python's
# engine would rescan it from every position for the URL pattern, for seconds.
_SECRETS = (
    (linear(r"whsec_[A-Za-z0-9+/=_-]+"), f"whsec_{MASK}"),
    (linear(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), rf"\1 {MASK}"),
    (linear(r"\bdsp_[A-Za-z0-9_-]+"), f"dsp_{MASK}"),
    (linear(r"(hooks\.slack(?:-gov)?\.com/)[^\s\"'?#]+"), rf"\1{MASK}"),
    (linear(r"(?i)([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@"), rf"\1{MASK}@"),
    (linear(r"(?i)(password|passwd|secret|token)=[^\s&\"']+"), rf"\1={MASK}"),
)

# Attributes every LogRecord has; anything else on a record came in through ``extra``.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def scrub(text: str) -> str:
    """``text`` with every secret pattern dispatcher knows replaced by ``***``."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class SecretFilter(logging.Filter):
    """Rewrites each record's message (arguments merged in) with :func:`scrub`, and adds the
    request or delivery the line belongs to."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg, record.args = scrub(message), None
        for name, variable in (("request_id", REQUEST_ID), ("delivery_id", DELIVERY_ID)):
            value = variable.get()
            if value is not None and not hasattr(record, name):
                setattr(record, name, value)
        return True


class TextFormatter(logging.Formatter):
    """``time level logger message key=value…``, scrubbed."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = _extras(record)
        if extras:
            text += " " + " ".join(f"{key}={_text_value(value)}" for key, value in extras.items())
        return scrub(text)


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the ``extra`` fields and any
    exception text, scrubbed."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_extras(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return scrub(json.dumps(entry, default=str))


def configure_logging(settings: Settings, stream: TextIO | None = None) -> None:
    """Route every logger through one handler writing to ``stream`` (stderr by default) in
    ``settings.log_format`` at ``settings.log_level``. Calling it again replaces the handler
    (no duplicate lines)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JSONFormatter() if settings.log_format == "json" else TextFormatter())
    handler.addFilter(SecretFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "dispatcher_handler", False)]:
        root.removeHandler(old)
    handler.dispatcher_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # Libraries that bring their own handlers would print past the formatter and the scrubber.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "sqlalchemy"):
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True
    # alembic announces each of its plugins at INFO on every start: noise, not news
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(
    kind: type[BaseException], value: BaseException, traceback: TracebackType | None
) -> None:
    logging.getLogger("dispatcher").critical(
        "uncaught exception", exc_info=(kind, value, traceback)
    )


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    thread = args.thread.name if args.thread is not None else "?"
    logging.getLogger("dispatcher").critical(
        "uncaught exception in thread %s",
        thread,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def log_attempt(
    *,
    delivery_id: str,
    notification_uuid: str,
    method: str,
    outcome: str,
    status_code: int | None,
    latency_ms: float,
    target: str,
    attempt: int | None = None,
    error: str | None = None,
) -> None:
    """One structured line for one delivery attempt. ``target`` must already be masked
    (:func:`dispatcher.senders.registry.describe_target`); it is scrubbed again all the same."""
    fields: dict[str, Any] = {
        "delivery_id": delivery_id,
        "notification_uuid": notification_uuid,
        "method": method,
        "outcome": outcome,
        "status_code": status_code,
        "latency_ms": round(latency_ms, 1),
        "target": scrub(target),
    }
    if attempt is not None:
        fields["attempt"] = attempt
    if error:
        fields["error"] = scrub(error)
    level = logging.INFO if outcome == AttemptResult.SUCCEEDED else logging.WARNING
    logging.getLogger(ATTEMPT_LOGGER).log(level, "delivery attempt %s", outcome, extra=fields)


def log_delivery_failed(**fields: Any) -> None:
    """The WARNING line of a delivery that ended ``failed`` (no attempt left, or a permanent
    error): ``delivery_id``, ``notification_uuid``, ``repository``, ``method``, ``target``
    (masked), ``failures`` (the counter after it), ``status_code`` and ``error``."""
    _warn("delivery failed: notification %s of %s, %s failures", fields)


def log_notification_disabled(**fields: Any) -> None:
    """The WARNING line of a notification disabled by its failures (fields as
    :func:`log_delivery_failed`'s, of the delivery that disabled it)."""
    _warn("notification disabled: %s of %s after %s failures", fields)


def _warn(message: str, fields: dict[str, Any]) -> None:
    fields = {**fields, "target": scrub(fields.get("target") or "")}
    if fields.get("error"):
        fields["error"] = scrub(fields["error"])
    args = (fields["notification_uuid"], fields["repository"], fields["failures"])
    logging.getLogger(FAILURES_LOGGER).warning(message, *args, extra=fields)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _RECORD_FIELDS and not key.startswith("_")
    }


def _text_value(value: Any) -> str:
    text = "-" if value is None else str(value)
    return json.dumps(text) if any(ch.isspace() for ch in text) or not text else text
