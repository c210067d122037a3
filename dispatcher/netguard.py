"""Where webhook and Slack deliveries may go (SSRF protection), checked twice.

* At create time, :func:`check_url` rejects what the URL itself shows: a scheme other than
  http/https, no host, ``localhost``, or a literal address that is not public. It does no DNS.
* At connect time, the client from :func:`make_http_client` resolves the host once per new
  connection, refuses every address :func:`is_allowed_address` rejects and connects to the
  address it checked, so a name cannot resolve to a public address for the check and to a
  private one for the connection (DNS rebinding). TLS still verifies and sends SNI for the
  hostname. A refused connection raises :class:`AddressNotAllowedError`.

``settings.networks`` (``DISPATCHER_ALLOWED_NETWORKS``) lists CIDR ranges allowed despite
being non-public, for tests and local development.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

import httpcore
import httpx

from dispatcher import __version__
from dispatcher.config import Settings
from dispatcher.errors import InvalidRequestError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

INVALID_URL_MESSAGE = "Invalid webhook URL"
_SCHEMES = ("http", "https")
_LOCALHOST_ADDRESSES = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


class AddressNotAllowedError(Exception):
    """A target host resolved only to addresses deliveries may not reach."""

    def __init__(self, host: str, addresses: Iterable[str]) -> None:
        shown = ", ".join(addresses) or "no address"
        super().__init__(f"address not allowed: {host} resolves to {shown}")
        self.host = host


def is_allowed_address(ip: IPAddress | str, settings: Settings) -> bool:
    """True if deliveries may connect to ``ip``: a public unicast address, or one inside
    ``settings.networks``. IPv4-mapped IPv6 addresses are judged as the IPv4 they carry."""
    address = ipaddress.ip_address(str(ip).split("%", 1)[0])  # drop an IPv6 zone id
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)
    if any(candidate in network for candidate in candidates for network in settings.networks):
        return True
    return _is_public(candidates[-1])


def _is_public(address: IPAddress) -> bool:
    return address.is_global and not (
        address.is_multicast
        or address.is_loopback
        or address.is_link_local
        or address.is_private
        or address.is_reserved
        or address.is_unspecified
    )


def check_url(url: str, settings: Settings) -> None:
    """Create-time check of a webhook or Slack URL; raises ``InvalidRequestError("Invalid
    webhook URL")`` for a bad scheme, no host, ``localhost``, or a literal non-public address
    outside ``settings.networks``. Names are not resolved here (that happens at connect time)."""
    try:
        parts = urlsplit(url)
        hostname, port = parts.hostname, parts.port  # .port raises ValueError if out of range
        httpx.URL(url)  # what the sender will send must parse too
    except (ValueError, httpx.InvalidURL):
        raise InvalidRequestError(INVALID_URL_MESSAGE) from None
    if (
        url != url.strip()
        or parts.scheme.lower() not in _SCHEMES
        or not hostname
        or port == 0
        or any(char.isspace() or not char.isprintable() for char in hostname)
    ):
        raise InvalidRequestError(INVALID_URL_MESSAGE)
    hostname = hostname.rstrip(".").lower()
    if hostname == "localhost" or hostname.endswith(".localhost"):
        if not any(is_allowed_address(ip, settings) for ip in _LOCALHOST_ADDRESSES):
            raise InvalidRequestError(INVALID_URL_MESSAGE)
        return
    literal = _literal_address(hostname)
    if literal is not None and not is_allowed_address(literal, settings):
        raise InvalidRequestError(INVALID_URL_MESSAGE)


def _literal_address(hostname: str) -> IPAddress | None:
    """The address a hostname spells literally, including legacy IPv4 forms the resolver
    accepts (``127.1``, ``2130706433``, ``0x7f.0.0.1``); None for a name."""
    try:
        return ipaddress.ip_address(hostname)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(hostname))
    except OSError:
        return None


class GuardedBackend(httpcore.NetworkBackend):
    """An httpcore network backend that resolves each new connection's host once, keeps only
    allowed addresses and connects to one of them. ``resolver`` (host, port) → addresses
    defaults to :func:`resolve` (the system resolver)."""

    def __init__(
        self,
        settings: Settings,
        *,
        resolver: Resolver | None = None,
        inner: httpcore.NetworkBackend | None = None,
    ) -> None:
        self._settings = settings
        self._resolve = resolver or resolve
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        resolved = self._resolve(host, port)
        allowed = [ip for ip in resolved if is_allowed_address(ip, self._settings)]
        if not allowed:
            raise AddressNotAllowedError(host, resolved)
        error: Exception | None = None
        for ip in allowed:
            try:
                return self._inner.connect_tcp(
                    ip, port, timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise AddressNotAllowedError(path, [])

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in resolver order, without duplicates."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
    addresses: list[str] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        ip = str(sockaddr[0])
        if ip not in addresses:
            addresses.append(ip)
    return addresses


class _GuardedTransport(httpx.HTTPTransport):
    """httpx's transport with its connection pool built on :class:`GuardedBackend`."""

    def __init__(
        self,
        settings: Settings,
        ssl_context: ssl.SSLContext,
        limits: httpx.Limits,
        resolver: Resolver | None,
    ) -> None:
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        # HTTPTransport has no network_backend parameter; rebuild its pool with ours.
        self._pool.close()
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(settings, resolver=resolver),
        )


def make_http_client(settings: Settings, *, resolver: Resolver | None = None) -> httpx.Client:
    """The one pooled keep-alive client of a worker process for webhook and Slack deliveries.

    Timeouts come from ``settings.http_timeout``, redirects are not followed, proxies from the
    environment are ignored (they would bypass the address check), the pool is sized for
    ``settings.worker_send_concurrency``, and every new connection goes through
    :class:`GuardedBackend`. When ``settings.webhook_client_cert`` and ``webhook_client_key``
    are both set, the pair is offered to servers that request a client certificate (Quay's
    ``ssl.cert``/``ssl.key``). ``resolver`` replaces the system resolver (tests). The caller
    owns the client and closes it."""
    ssl_context = httpx.create_ssl_context(trust_env=False)
    if settings.webhook_client_cert and settings.webhook_client_key:
        ssl_context.load_cert_chain(settings.webhook_client_cert, settings.webhook_client_key)
    limits = httpx.Limits(
        max_connections=settings.worker_send_concurrency,
        max_keepalive_connections=settings.worker_send_concurrency,
    )
    return httpx.Client(
        transport=_GuardedTransport(settings, ssl_context, limits, resolver),
        timeout=httpx.Timeout(settings.http_timeout),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": f"dispatcher/{__version__}"},
    )
