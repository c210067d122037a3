"""The HTTP transport of a worker process: httpx's request and response types over aiohttp's
connection pool, with :mod:`dispatcher.senders.netguard`'s address check at connect time.

Senders build ``httpx.Request`` objects and read ``httpx.Response`` objects (so tests plug in
``httpx.MockTransport``); :class:`GuardedTransport` does the I/O with one pooled
``aiohttp.ClientSession`` on the worker's event loop, at a fraction of httpcore's cost per
request. Its errors are httpx's (:func:`_translate`), plus
:class:`~dispatcher.senders.netguard.AddressNotAllowedError` for a refused target.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from functools import lru_cache

import aiohttp
import httpx
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult

from dispatcher.config import Settings
from dispatcher.senders.netguard import (
    AddressNotAllowedError,
    Resolver,
    is_allowed_address,
    literal_address,
    resolve,
)
from dispatcher.version import __version__


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that keeps only allowed addresses. Each new connection's host is
    resolved once (``resolver`` (host, port) → addresses, default :func:`resolve`, run off the
    event loop) and the connection goes to one of the addresses checked here, so a name cannot
    resolve to a public address for the check and a private one for the connection."""

    def __init__(self, settings: Settings, resolver: Resolver | None = None) -> None:
        self._settings = settings
        self._resolve = resolver or resolve

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        resolved = await asyncio.get_running_loop().run_in_executor(None, self._resolve, host, port)
        allowed = [ip for ip in resolved if is_allowed_address(ip, self._settings)]
        if not allowed:
            raise AddressNotAllowedError(host, resolved)
        return [
            {
                "hostname": host,
                "host": ip,
                "port": port,
                "family": socket.AF_INET6 if ":" in ip else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for ip in allowed
        ]

    async def close(self) -> None:
        pass


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that sends through one pooled aiohttp session on the current event
    loop, with :class:`GuardedResolver` for names and the same check for literal addresses.

    httpx gives the senders their request and response types (and ``httpx.MockTransport`` in
    tests); aiohttp does the I/O at a fraction of httpcore's cost per request. Redirects are
    not followed, cookies are not kept, proxies from the environment are ignored (they would
    bypass the address check), and ``settings.http_timeout`` bounds each request from start
    to the end of its body. aiohttp's errors become httpx's (:func:`_translate`)."""

    def __init__(
        self, settings: Settings, ssl_context: ssl.SSLContext, resolver: Resolver | None = None
    ) -> None:
        self._settings = settings
        self._ssl_context = ssl_context
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        """The session, made on first use (aiohttp binds it to the running loop)."""
        if self._session is None:
            settings = self._settings
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(settings, self._resolver),
                ssl=self._ssl_context,
                limit=settings.worker_send_concurrency,
                limit_per_host=0,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": f"dispatcher/{__version__}"},
                timeout=aiohttp.ClientTimeout(total=settings.http_timeout),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                trust_env=False,
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        literal = literal_address(host)
        if literal is not None and not is_allowed_address(literal, self._settings):
            raise AddressNotAllowedError(host, [str(literal)])
        headers = [  # as the sender spelled them: some receivers match names by case
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in request.headers.raw
            if name.lower() not in _COMPUTED_HEADERS
        ]
        try:
            response = await self._open().request(
                request.method,
                _yarl_url(str(request.url)),
                headers=headers,
                data=request.content or None,
                allow_redirects=False,
            )
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise _translate(exc, request) from exc
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_ResponseStream(response, request),
            request=request,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


# aiohttp computes these from the URL and the body.
_COMPUTED_HEADERS = frozenset({b"host", b"content-length", b"transfer-encoding"})


@lru_cache(maxsize=4096)
def _yarl_url(url: str) -> yarl.URL:
    """``url`` as aiohttp takes it; httpx has already percent-encoded it. Cached: a worker
    sends to the same few URLs over and over."""
    return yarl.URL(url, encoded=True)


class _ResponseStream(httpx.AsyncByteStream):
    """The body of an aiohttp response as an httpx stream; closing it releases the connection
    to the pool (or closes it, if the body was not read to the end)."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _translate(exc, self._request) from exc

    async def aclose(self) -> None:
        self._response.release()


def _translate(exc: BaseException, request: httpx.Request) -> Exception:
    """The httpx exception for an aiohttp (or asyncio) one, so senders see one error model."""
    text = str(exc) or type(exc).__name__
    error: type[httpx.RequestError]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        error = httpx.ConnectTimeout
    elif isinstance(exc, aiohttp.SocketTimeoutError):
        error = httpx.ReadTimeout
    elif isinstance(exc, TimeoutError):
        error = httpx.TimeoutException
    elif isinstance(exc, aiohttp.InvalidURL):
        error = httpx.UnsupportedProtocol
    elif isinstance(exc, aiohttp.ClientConnectorError):
        error = httpx.ConnectError
    elif isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientResponseError):
        error = httpx.RemoteProtocolError
    elif isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientOSError):
        error = httpx.ReadError
    elif isinstance(exc, ValueError):  # a header aiohttp refuses to send
        error = httpx.LocalProtocolError
    else:
        error = httpx.TransportError
    return error(text, request=request)


def make_http_transport(
    settings: Settings, *, resolver: Resolver | None = None
) -> GuardedTransport:
    """The one pooled keep-alive transport of a worker process for webhook and Slack
    deliveries (see :class:`GuardedTransport`), used on one event loop. When
    ``settings.webhook_client_cert`` and ``webhook_client_key`` are both set, the pair is
    offered to servers that request a client certificate (Quay's ``ssl.cert``/``ssl.key``).
    ``resolver`` replaces the system resolver (tests). The caller closes it with
    ``await transport.aclose()`` on that loop."""
    ssl_context = httpx.create_ssl_context(trust_env=False)
    if settings.webhook_client_cert and settings.webhook_client_key:
        ssl_context.load_cert_chain(settings.webhook_client_cert, settings.webhook_client_key)
    return GuardedTransport(settings, ssl_context, resolver)
