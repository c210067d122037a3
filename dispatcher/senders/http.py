"""One HTTP POST attempt and the translation of its outcome, shared by webhook and Slack.

2xx is success. Transient (retried): timeouts, connection and protocol errors, 5xx, 408, 429
(``retry_after`` from ``Retry-After`` in seconds or as an HTTP date, capped at
``settings.retry_after_max``). Permanent: 3xx (redirects are not followed), every other 4xx, a
target address the network guard refuses, and a request httpx cannot make at all.

Error messages name the target only by its masked description, and every secret fragment the
caller passes is scrubbed from messages and response excerpts.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, ClassVar

import httpx

from dispatcher.config import Settings
from dispatcher.errors import PermanentDeliveryError, TransientDeliveryError
from dispatcher.senders.base import Receipt
from dispatcher.senders.netguard import AddressNotAllowedError

_TRANSIENT_STATUSES = frozenset({408, 429})
_MASK = "***"


async def post(
    transport: httpx.AsyncBaseTransport,
    settings: Settings,
    *,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    label: str,
    target: str,
    secrets: Sequence[str] = (),
) -> Receipt:
    """POST ``body`` to ``url`` once. ``label`` names the method in messages (``webhook``,
    ``Slack``), ``target`` is the masked URL, ``secrets`` are fragments never to be shown.

    The request goes straight to the transport: an ``httpx.AsyncClient``'s cookies, redirects
    and auth are all things a delivery must not do, and they cost more than the POST itself."""
    limit = settings.response_excerpt_bytes
    try:
        request = httpx.Request("POST", parse_url(url), content=body, headers=headers)
        response = await transport.handle_async_request(request)
        try:
            # Read a little past the limit so a secret cut by the limit is still recognised.
            margin = max((len(secret) for secret in secrets), default=0)
            raw = await _read_excerpt(response, limit + margin)
        finally:
            await response.aclose()
        excerpt = _trim(scrub(raw, secrets), limit)
        status = response.status_code
        retry_after_header = response.headers.get("retry-after")
    except AddressNotAllowedError as exc:
        raise PermanentDeliveryError(f"{label} to {target}: {scrub(str(exc), secrets)}") from None
    except httpx.TimeoutException as exc:
        raise TransientDeliveryError(
            f"{label} to {target}: timed out ({type(exc).__name__})"
        ) from None
    except httpx.TransportError as exc:
        text = scrub(str(exc) or type(exc).__name__, secrets)
        if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
            raise PermanentDeliveryError(f"{label} to {target}: {text}") from None
        raise TransientDeliveryError(f"{label} to {target}: {text}") from None
    except httpx.InvalidURL:
        raise PermanentDeliveryError(f"{label} to {target}: invalid URL") from None

    if 200 <= status < 300:
        return Receipt(status_code=status, response_excerpt=excerpt)
    message = f"{status} response for {label} to {target}"
    if status in _TRANSIENT_STATUSES or status >= 500:
        raise TransientDeliveryError(
            message,
            status_code=status,
            response_excerpt=excerpt,
            retry_after=parse_retry_after(retry_after_header, settings.retry_after_max),
        )
    if 300 <= status < 400:
        message += " (redirects are not followed)"
    raise PermanentDeliveryError(message, status_code=status, response_excerpt=excerpt)


async def _read_excerpt(response: httpx.Response, limit: int) -> str:
    """At most ``limit`` bytes of the body, decoded leniently. A body that fits is read to
    the end, so the connection can be reused."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(chunks)[:limit].decode("utf-8", errors="replace")


def _trim(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, never inside a character."""
    return text.encode()[:limit].decode("utf-8", errors="ignore")


def parse_retry_after(value: str | None, cap: float, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date), between 0
    and ``cap``; None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), cap)


def scrub(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every non-empty secret fragment replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, _MASK)
    return text


# A worker sends to the same few URLs over and over: parse each once. The functions below are
# pure functions of the URL text, so their results are cached too.
URL_CACHE_SIZE = 4096


@lru_cache(maxsize=URL_CACHE_SIZE)
def parse_url(url: str) -> httpx.URL:
    """``httpx.URL(url)``, cached. Raises httpx.InvalidURL (or TypeError) like it."""
    return httpx.URL(url)


@lru_cache(maxsize=URL_CACHE_SIZE)
def mask_url(url: str, *, hide_path: bool) -> str:
    """``scheme://host[:port]/path`` without credentials; the query string (and with
    ``hide_path`` the path) replaced by ``***``."""
    try:
        parsed = parse_url(url)
        host = parsed.host
        port = f":{parsed.port}" if parsed.port else ""
        scheme = parsed.scheme
        path = parsed.path
        query = parsed.query
    except (httpx.InvalidURL, TypeError):
        return _MASK
    if ":" in host:
        host = f"[{host}]"
    shown = f"{scheme}://{host}{port}"
    if hide_path:
        return f"{shown}/{_MASK}" if path not in ("", "/") else shown + path
    shown += path
    return f"{shown}?{_MASK}" if query else shown


def url_secrets(url: str, *, path_is_secret: bool) -> list[str]:
    """The fragments of ``url`` that must never be shown: userinfo, query, and optionally the
    path (longest first, so a longer secret is masked before a part of it)."""
    return list(_url_secrets(url, path_is_secret))


@lru_cache(maxsize=URL_CACHE_SIZE)
def _url_secrets(url: str, path_is_secret: bool) -> tuple[str, ...]:
    try:
        parsed = parse_url(url)
    except (httpx.InvalidURL, TypeError):
        return (url,)
    fragments = [url, parsed.userinfo.decode("ascii", "replace"), parsed.query.decode("ascii")]
    if path_is_secret and parsed.path not in ("", "/"):
        fragments.append(parsed.path.lstrip("/"))
    return tuple(sorted((f for f in fragments if f), key=len, reverse=True))


@lru_cache(maxsize=URL_CACHE_SIZE)
def target_key(url: str) -> str:
    """``host[:port]`` of ``url`` (lower-cased), for per-target concurrency limits."""
    try:
        parsed = parse_url(url)
    except (httpx.InvalidURL, TypeError):
        return ""
    host = parsed.host
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parsed.port}" if parsed.port else host


class HttpSender:
    """What the webhook and Slack senders share: the injected settings and (guarded) httpx
    transport, and a target named by ``config["url"]``, described with its path hidden when the
    path is the secret (Slack's hook URLs)."""

    path_is_secret: ClassVar[bool]

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport) -> None:
        self._settings = settings
        self._transport = transport

    def target_key(self, config: dict[str, Any]) -> str:
        return target_key(str(config.get("url", "")))

    @classmethod
    def describe(cls, config: dict[str, Any]) -> str:
        return mask_url(str(config.get("url", "")), hide_path=cls.path_is_secret)
