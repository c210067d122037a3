"""Where webhook and Slack deliveries may go (SSRF protection), checked twice.

* At create time, :func:`check_url` rejects what the URL itself shows: a scheme other than
  http/https, no host, ``localhost``, or a literal address that is not public. It does no DNS.
* At connect time, the transport from :func:`dispatcher.senders.transport.make_http_transport`
  resolves the host once per
  new connection, refuses every address :func:`is_allowed_address` rejects and connects to
  an address it checked (a literal address is checked as it is), so a name cannot resolve to
  a public address for the check and to a private one for the connection (DNS rebinding).
  TLS still verifies and sends SNI for the hostname. A refused connection raises
  :class:`AddressNotAllowedError`.

``settings.networks`` (``DISPATCHER_ALLOWED_NETWORKS``) lists CIDR ranges allowed despite
being non-public, for tests and local development.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from functools import lru_cache
from urllib.parse import urlsplit

import httpx

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
    """Create-time check of a webhook or Slack URL; raises ``InvalidRequestError`` with Quay's
    ``Invalid webhook URL`` for a bad scheme or no host, and the same words followed by the
    reason and the setting that allows it for ``localhost`` or a literal non-public address
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
            raise _not_allowed(hostname, _LOCALHOST_ADDRESSES[0])
        return
    literal = literal_address(hostname)
    if literal is not None and not is_allowed_address(literal, settings):
        raise _not_allowed(hostname, literal)


def _not_allowed(hostname: str, address: IPAddress) -> InvalidRequestError:
    """Quay's message first, then why, and the setting that would allow it."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    kind = next(
        (name for name, applies in _ADDRESS_KINDS if applies(address)), "not a public address"
    )
    return InvalidRequestError(
        f"{INVALID_URL_MESSAGE}: {hostname} is {kind}; set DISPATCHER_ALLOWED_NETWORKS to allow it"
    )


# The first that applies names why an address is refused (link-local ones count as private too).
_ADDRESS_KINDS: tuple[tuple[str, Callable[[IPAddress], bool]], ...] = (
    ("a loopback address", lambda address: address.is_loopback),
    ("a link-local address", lambda address: address.is_link_local),
    ("an unspecified address", lambda address: address.is_unspecified),
    ("a multicast address", lambda address: address.is_multicast),
    ("a private address", lambda address: address.is_private),
)


@lru_cache(maxsize=4096)
def literal_address(hostname: str) -> IPAddress | None:
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


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in resolver order, without duplicates."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        # aiohttp reports an OSError from a resolver as a failed connection, by its strerror
        errno = exc.errno if isinstance(exc, OSError) and exc.errno else 0
        raise OSError(errno, f"cannot resolve {host}: {exc}") from None
    addresses: list[str] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        ip = str(sockaddr[0])
        if ip not in addresses:
            addresses.append(ip)
    return addresses
