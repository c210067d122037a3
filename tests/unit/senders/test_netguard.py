"""Where deliveries may go: create-time URL checks and connect-time address checks."""

from __future__ import annotations

import asyncio
import http.server
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
import trustme

from dispatcher.config import Settings
from dispatcher.errors import InvalidRequestError
from dispatcher.senders.netguard import (
    AddressNotAllowedError,
    Resolver,
    check_url,
    is_allowed_address,
    resolve,
)
from dispatcher.senders.transport import GuardedResolver, GuardedTransport, make_http_transport

LOOPBACK_ALLOWED = "127.0.0.0/8,::1/128"


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/",
        "http://localhost:5000/",
        "https://127.0.0.1:5000/",
        "telnet://example.com",
        "ftp://example.com/",
        "http://LOCALHOST./",
        "http://api.localhost/",
        "http://[::1]/",
        "http://[::1]:8080/hook",
        "http://127.0.0.2/",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://240.0.0.1/",
        "http://100.64.0.1/",
        "http://2130706433/",
        "http://127.1/",
        "http://0x7f.0.0.1/",
        "http:///path-only",
        "http://",
        "example.com",
        "http://example.com:99999/",
        "http://example.com:0/",
        " http://example.com/",
        "http://exa mple.com/",
        "http://example.com/\r\nX-Injected: 1",
    ],
)
def test_create_time_rejects(url: str) -> None:
    # Quay's words first; a refused address adds why (checked below)
    with pytest.raises(InvalidRequestError, match=r"^Invalid webhook URL(: |$)"):
        check_url(url, Settings())


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://localhost:9000/hook", "localhost is a loopback address"),
        ("http://127.0.0.1:9000/hook", "127.0.0.1 is a loopback address"),
        ("http://[::1]/", "::1 is a loopback address"),
        ("http://[::ffff:10.0.0.1]/", "::ffff:10.0.0.1 is a private address"),
        ("http://10.1.2.3/", "10.1.2.3 is a private address"),
        ("http://169.254.169.254/latest", "169.254.169.254 is a link-local address"),
        ("http://0.0.0.0/", "0.0.0.0 is an unspecified address"),
        ("http://100.64.0.1/", "100.64.0.1 is not a public address"),
    ],
)
def test_a_refused_address_says_why_and_what_allows_it(url: str, why: str) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        check_url(url, Settings())
    assert refused.value.message == (
        f"Invalid webhook URL: {why}; set DISPATCHER_ALLOWED_NETWORKS to allow it"
    )


@pytest.mark.parametrize("url", ["telnet://example.com", "http://", "http://example.com:0/"])
def test_a_malformed_url_keeps_quays_words_alone(url: str) -> None:
    with pytest.raises(InvalidRequestError, match=r"^Invalid webhook URL$"):
        check_url(url, Settings())


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com",
        "https://example.com/hook?token=abc",
        "HTTPS://Example.COM:8443/x",
        "http://8.8.8.8/",
        "http://[2001:4860:4860::8888]/",
        "http://user:pass@example.com/",
    ],
)
def test_create_time_accepts(url: str) -> None:
    check_url(url, Settings())


@pytest.mark.parametrize(
    "url",
    ["http://localhost:5000/", "https://127.0.0.1:5000/", "http://[::1]/", "http://127.0.0.2/"],
)
def test_allowed_networks_override_create_time_check(url: str) -> None:
    check_url(url, Settings(allowed_networks=LOOPBACK_ALLOWED))


def test_allowed_networks_are_exact() -> None:
    settings = Settings(allowed_networks="10.1.0.0/16")
    check_url("http://10.1.2.3/", settings)
    with pytest.raises(InvalidRequestError):
        check_url("http://10.2.0.1/", settings)
    with pytest.raises(InvalidRequestError):
        check_url("http://localhost/", settings)


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("::ffff:93.184.216.34", True),
        ("127.0.0.1", False),
        ("::1", False),
        ("::ffff:127.0.0.1", False),
        ("::127.0.0.1", False),
        ("10.0.0.1", False),
        ("169.254.169.254", False),
        ("fe80::1%eth0", False),
        ("ff02::1", False),
        ("0.0.0.0", False),
        ("::", False),
        ("64:ff9b::7f00:1", False),
    ],
)
def test_is_allowed_address(address: str, allowed: bool) -> None:
    assert is_allowed_address(address, Settings()) is allowed


def test_ipv4_mapped_address_allowed_by_its_ipv4_network() -> None:
    assert is_allowed_address("::ffff:127.0.0.1", Settings(allowed_networks="127.0.0.0/8"))


# -- connect time ------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    requests: ClassVar[list[dict[str, str]]] = []
    peers: ClassVar[set[int]] = set()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).requests.append({k.lower(): v for k, v in self.headers.items()})
        type(self).peers.add(self.client_address[1])
        if self.path == "/redirect":
            self._answer(302, [("Location", "/elsewhere")])
        elif self.path == "/cookie":
            self._answer(200, [("Set-Cookie", "session=abc; Path=/")])
        elif self.path == "/hang":
            time.sleep(1.0)
            self._answer(200)
        elif self.path == "/hang-up":
            self.close_connection = True  # no answer at all
        else:
            self._answer(200)

    def _answer(self, status: int, headers: list[tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
        body = b"ok"
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    _Handler.requests = []
    _Handler.peers = set()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


def rebinding_resolver(calls: list[str]) -> Resolver:
    """Resolves every name to loopback, as a rebinding attacker's DNS would."""

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]

    return resolve


def post_all(transport: httpx.AsyncBaseTransport, *urls: str) -> list[httpx.Response]:
    """POST to each URL in turn through ``transport`` on one event loop, reading each body;
    then close the transport."""

    async def run() -> list[httpx.Response]:
        responses = []
        try:
            for url in urls:
                request = httpx.Request("POST", url, content=b"{}")
                response = await transport.handle_async_request(request)
                await response.aread()
                await response.aclose()
                responses.append(response)
        finally:
            await transport.aclose()
        return responses

    return asyncio.run(run())


def test_name_resolving_to_loopback_is_refused(server: int) -> None:
    calls: list[str] = []
    transport = make_http_transport(Settings(), resolver=rebinding_resolver(calls))
    with pytest.raises(AddressNotAllowedError, match="address not allowed"):
        post_all(transport, f"http://public.example.com:{server}/")
    assert calls == ["public.example.com"]
    assert _Handler.requests == []


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::ffff:127.0.0.1]", "127.1"])
def test_loopback_by_name_or_literal_address_is_refused(server: int, host: str) -> None:
    with pytest.raises((AddressNotAllowedError, httpx.UnsupportedProtocol)):
        post_all(make_http_transport(Settings()), f"http://{host}:{server}/")
    assert _Handler.requests == []


def test_allowed_network_connects_to_the_checked_address_once_per_connection(
    server: int,
) -> None:
    calls: list[str] = []
    settings = Settings(allowed_networks="127.0.0.0/8")
    transport = make_http_transport(settings, resolver=rebinding_resolver(calls))
    responses = post_all(transport, *[f"http://hooks.example.com:{server}/x"] * 3)
    assert [response.status_code for response in responses] == [200] * 3
    assert calls == ["hooks.example.com"]
    assert [r["host"] for r in _Handler.requests] == [f"hooks.example.com:{server}"] * 3
    assert len(_Handler.peers) == 1


def test_redirects_are_returned_not_followed(server: int) -> None:
    transport = make_http_transport(Settings(allowed_networks="127.0.0.0/8"))
    (response,) = post_all(transport, f"http://127.0.0.1:{server}/redirect")
    assert response.status_code == 302
    assert response.headers["location"] == "/elsewhere"
    assert len(_Handler.requests) == 1


def test_cookies_are_not_kept(server: int) -> None:
    transport = make_http_transport(Settings(allowed_networks="127.0.0.0/8"))
    post_all(transport, f"http://127.0.0.1:{server}/cookie", f"http://127.0.0.1:{server}/x")
    assert "cookie" not in _Handler.requests[1]


def test_the_transport_names_the_product(server: int) -> None:
    from dispatcher.version import __version__

    post_all(
        make_http_transport(Settings(allowed_networks="127.0.0.0/8")), f"http://127.0.0.1:{server}/"
    )
    assert _Handler.requests[0]["user-agent"] == f"dispatcher/{__version__}"


def test_errors_become_httpx_errors(server: int) -> None:
    settings = Settings(allowed_networks="127.0.0.0/8", http_timeout=0.3)
    with pytest.raises(httpx.TimeoutException):
        post_all(make_http_transport(settings), f"http://127.0.0.1:{server}/hang")
    with pytest.raises(httpx.RemoteProtocolError):
        post_all(make_http_transport(settings), f"http://127.0.0.1:{server}/hang-up")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    with pytest.raises(httpx.ConnectError):
        post_all(make_http_transport(settings), f"http://127.0.0.1:{closed_port}/")
    unresolvable = make_http_transport(settings, resolver=failing_resolver)
    with pytest.raises(httpx.ConnectError, match="cannot resolve"):
        post_all(unresolvable, "http://no-such-host.example/")


def failing_resolver(host: str, port: int) -> list[str]:
    return resolve("no-such-host.invalid", port)


def test_client_certificate_is_loaded_only_when_both_files_are_set(tmp_path: Path) -> None:
    missing = tmp_path / "absent.pem"
    make_http_transport(Settings(webhook_client_cert=missing))
    make_http_transport(Settings(webhook_client_key=missing))
    with pytest.raises(FileNotFoundError):
        make_http_transport(Settings(webhook_client_cert=missing, webhook_client_key=missing))


# -- TLS -----------------------------------------------------------------------------------------


@pytest.fixture
def tls_server() -> Iterator[tuple[int, trustme.CA]]:
    """An HTTPS server on loopback whose certificate names hooks.example.com."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("hooks.example.com").configure_cert(context)
    _Handler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield httpd.server_address[1], ca
    finally:
        httpd.shutdown()
        httpd.server_close()


def tls_transport(ca: trustme.CA) -> GuardedTransport:
    """The guarded transport trusting ``ca``, with every name resolving to loopback."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    settings = Settings(allowed_networks="127.0.0.0/8")
    return GuardedTransport(settings, context, resolver=lambda host, port: ["127.0.0.1"])


def test_https_verifies_the_name_it_resolved(tls_server: tuple[int, trustme.CA]) -> None:
    port, ca = tls_server
    (response,) = post_all(tls_transport(ca), f"https://hooks.example.com:{port}/x")
    assert response.status_code == 200
    assert _Handler.requests[0]["host"] == f"hooks.example.com:{port}"


def test_https_refuses_a_certificate_for_another_name(
    tls_server: tuple[int, trustme.CA],
) -> None:
    port, ca = tls_server
    with pytest.raises(httpx.ConnectError, match="certificate"):
        post_all(tls_transport(ca), f"https://other.example.com:{port}/x")
    assert _Handler.requests == []


def test_the_system_resolver_and_the_check_on_a_real_name() -> None:
    """A real name through the real resolver (localhost, from /etc/hosts): the addresses it
    gives are checked, and only those allowed are the ones a connection may use."""
    assert "127.0.0.1" in resolve("localhost", 80)
    with pytest.raises(AddressNotAllowedError, match=r"localhost resolves to .*127\.0\.0\.1"):
        asyncio.run(GuardedResolver(Settings()).resolve("localhost", 80))
    allowed = asyncio.run(
        GuardedResolver(Settings(allowed_networks="127.0.0.0/8")).resolve("localhost", 80)
    )
    assert {entry["host"] for entry in allowed} == {"127.0.0.1"}
    assert all(entry["hostname"] == "localhost" and entry["port"] == 80 for entry in allowed)


def test_only_the_allowed_addresses_of_a_name_are_kept() -> None:
    mixed = GuardedResolver(
        Settings(allowed_networks="10.1.0.0/16"),
        resolver=lambda host, port: ["10.2.0.1", "10.1.2.3", "93.184.215.14", "127.0.0.1"],
    )
    kept = [entry["host"] for entry in asyncio.run(mixed.resolve("hooks.example.com", 443))]
    assert kept == ["10.1.2.3", "93.184.215.14"]
