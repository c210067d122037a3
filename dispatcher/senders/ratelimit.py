"""How fast deliveries may go to one endpoint: a notification's ``config.rate_limit``, checked
at create, and the rate and bucket each delivery is paced by.

``rate_limit`` is messages per second, a positive number up to
:data:`~dispatcher.config.MAX_RATE_LIMIT`, allowed in every method's config (Quay's clients
never send it, so nothing changes for them). A delivery goes at the first of: its
notification's ``rate_limit``, its method's default (Slack: 1/s), the operator's
``settings.default_rate_limit``; with none of them it is not paced.

The *bucket* is what one budget is shared by: the method and a truncated SHA-256 of the full
endpoint (the URL, or the address), so every notification to the same endpoint shares it, two
Slack webhooks on ``hooks.slack.com`` do not, and the name shows no secret of the URL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from dispatcher.config import MAX_RATE_LIMIT
from dispatcher.configfields import ConfigField
from dispatcher.errors import InvalidFieldError

FIELD = "rate_limit"
CONFIG_FIELD = ConfigField(
    name=FIELD,
    label="Rate limit",
    widget="number",
    decimal=True,
    help="At most this many messages a second to this endpoint (Slack: 1 unless set)",
    example="2",
)
_DIGEST_CHARS = 16  # 64 bits of SHA-256: no two endpoints of one deployment share a bucket
_BUCKET_CACHE_SIZE = 4096


@dataclass(frozen=True)
class RateLimit:
    """Deliveries of ``bucket`` go at most ``rate`` a second."""

    bucket: str
    rate: float


def check(config: Mapping[str, Any]) -> None:
    """InvalidFieldError naming ``config.rate_limit`` unless it is absent, null, or a finite
    number above 0 and at most :data:`~dispatcher.config.MAX_RATE_LIMIT` (not a boolean, not a
    string)."""
    if config.get(FIELD) is not None and configured(config) is None:
        raise InvalidFieldError(
            f"config.rate_limit must be a number of messages per second above 0 and at most "
            f"{MAX_RATE_LIMIT:g}",
            location=("config", FIELD),
        )


def configured(config: Mapping[str, Any]) -> float | None:
    """The notification's own rate, or None when it names none (or none :func:`check`
    accepts: a config stored before it was checked paces by the defaults)."""
    value = config.get(FIELD)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not 0 < value <= MAX_RATE_LIMIT:  # NaN compares false: refused too
        return None
    return float(value)


def resolve(
    method: str,
    endpoint: str,
    config: Mapping[str, Any],
    method_default: float | None,
    default: float | None,
) -> RateLimit | None:
    """The limit a delivery of ``method`` to ``endpoint`` goes at (see the module docstring),
    or None when it is not paced."""
    rate = configured(config) or method_default or default
    if rate is None:
        return None
    return RateLimit(bucket_key(method, endpoint), rate)


@lru_cache(maxsize=_BUCKET_CACHE_SIZE)
def bucket_key(method: str, endpoint: str) -> str:
    """``<method>:<first hex digits of sha256(endpoint)>``."""
    digest = hashlib.sha256(endpoint.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{method}:{digest[:_DIGEST_CHARS]}"


__all__ = ["CONFIG_FIELD", "FIELD", "RateLimit", "bucket_key", "check", "configured", "resolve"]
