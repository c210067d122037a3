"""Where deliveries may go: create-time URL checks and connect-time address checks."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from dispatcher.config import Settings
from dispatcher.errors import InvalidRequestError
from dispatcher.netguard import (
    AddressNotAllowedError,
    Resolver,
    check_url,
    is_allowed_address,
    make_http_client,
)

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
    hosts: ClassVar[list[str]] = []
    peers: ClassVar[set[int]] = set()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._answer()

    def do_GET(self) -> None:
        self._answer()

    def _answer(self) -> None:
        type(self).hosts.append(self.headers.get("Host", ""))
        type(self).peers.add(self.client_address[1])
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    _Handler.hosts = []
    _Handler.peers = set()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
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


def test_name_resolving_to_loopback_is_refused(server: int) -> None:
    calls: list[str] = []
    with (
        make_http_client(Settings(), resolver=rebinding_resolver(calls)) as client,
        pytest.raises(AddressNotAllowedError, match="address not allowed"),
    ):
        client.get(f"http://public.example.com:{server}/")
    assert calls == ["public.example.com"]
    assert _Handler.hosts == []


def test_system_resolver_localhost_is_refused(server: int) -> None:
    with make_http_client(Settings()) as client, pytest.raises(AddressNotAllowedError):
        client.get(f"http://localhost:{server}/")
    with make_http_client(Settings()) as client, pytest.raises(AddressNotAllowedError):
        client.get(f"http://127.0.0.1:{server}/")
    assert _Handler.hosts == []


def test_allowed_network_connects_to_the_checked_address_once_per_connection(
    server: int,
) -> None:
    calls: list[str] = []
    settings = Settings(allowed_networks="127.0.0.0/8")
    with make_http_client(settings, resolver=rebinding_resolver(calls)) as client:
        for _ in range(3):
            response = client.post(f"http://hooks.example.com:{server}/x", content=b"{}")
            assert response.status_code == 200
    assert calls == ["hooks.example.com"]
    assert _Handler.hosts == [f"hooks.example.com:{server}"] * 3
    assert len(_Handler.peers) == 1


def test_client_does_not_follow_redirects() -> None:
    client = make_http_client(Settings())
    assert client.follow_redirects is False
    assert client.timeout == httpx.Timeout(Settings().http_timeout)
    client.close()


def test_client_certificate_is_loaded_only_when_both_files_are_set(tmp_path: Path) -> None:
    missing = tmp_path / "absent.pem"
    make_http_client(Settings(webhook_client_cert=missing)).close()
    make_http_client(Settings(webhook_client_key=missing)).close()
    with pytest.raises(FileNotFoundError):
        make_http_client(Settings(webhook_client_cert=missing, webhook_client_key=missing))


def test_the_shared_client_names_the_product() -> None:
    from dispatcher import __version__
    from dispatcher.config import Settings
    from dispatcher.netguard import make_http_client

    with make_http_client(Settings()) as client:
        assert client.headers["User-Agent"] == f"dispatcher/{__version__}"
