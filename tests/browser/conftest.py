"""Real-browser fixtures: Debian's headless chromium driven by Playwright, and a live
``dispatcher serve``-like app per backend with an embedded worker delivering to a loopback
webhook receiver that a test can make fail.

* ``browser`` (package): one chromium for all the browser tests. Never downloaded: Playwright is
  pointed at ``/usr/bin/chromium`` (``apt-get install -y chromium chromium-driver``; ``.ci/run``
  installs it). Missing, it skips the browser tests, except under CI, where it fails them.
* ``console_server`` (package, per backend): the API and console on a free loopback port,
  an embedded worker and sweep, short retries, and a session-long ``Receiver``.
* ``page`` (per test): a fresh browser context (no cookies) whose every request leaving
  loopback is aborted and recorded in ``offsite``; ``console_page`` also fails the test if
  any was attempted.
* ``shoot(page, name)`` saves a full-page screenshot under ``DISPATCHER_SCREENSHOTS`` (or the
  run's temporary directory).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

from dispatcher.db import upgrade
from dispatcher.runtime import Runtime, create_runtime
from dispatcher.service import authorized_emails, repositories, tokens
from dispatcher.worker.embedded import start_embedded
from tests.conftest import BACKENDS, fresh_database_url, serving, settings_for
from tests.integration.conftest import Receiver, receiving

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Every URL but http(s) to a loopback host: what no console page may ask for.
OFF_LOOPBACK = re.compile(r"^(?!https?://(?:127\.0\.0\.1|localhost|\[::1\])(?:[:/?#]|$))")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


# Package-scoped, not session-scoped: Playwright's sync API keeps its event loop marked as
# running in the main thread while it is started, and every later test that calls
# asyncio.run() would fail. The browser tests run together; the browser stops after them.
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} missing: apt-get install -y chromium chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@dataclass
class ConsoleServer:
    """A live app with an embedded worker; ``receiver`` is where its webhooks go."""

    runtime: Runtime
    base_url: str
    receiver: Receiver
    backend: str

    def token(
        self,
        *,
        scopes: tuple[str, ...] = ("repo:admin",),
        grants: tuple[str, ...] = ("*",),
    ) -> tuple[int, str]:
        """A new token's id and secret."""
        with self.runtime.sessions.begin() as session:
            token, secret = tokens.create_token(session, scopes=scopes, grants=grants)
            return token.id, secret

    def repository(self) -> str:
        """A newly registered ``namespace/web`` in a namespace of its own."""
        name = f"acme-{secrets.token_hex(3)}/web"
        with self.runtime.sessions.begin() as session:
            repositories.add_repository(session, name)
        return name

    def authorize_email(self, repository: str, address: str) -> None:
        """Confirm ``address`` for ``repository``'s e-mail notifications (as an operator)."""
        namespace, name = repository.split("/")
        with self.runtime.sessions.begin() as session:
            found = repositories.get_repository(session, namespace, name)
            authorized_emails.authorize(session, found, address, self.runtime.settings)

    def url(self, path: str) -> str:
        return self.base_url + path


@pytest.fixture(scope="package")
def console_receiver() -> Iterator[Receiver]:
    with receiving() as receiver:
        yield receiver


@pytest.fixture(scope="package", params=BACKENDS)
def console_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_database: Callable[[], str],
    console_receiver: Receiver,
) -> Iterator[ConsoleServer]:
    url = fresh_database_url(request.param, tmp_path_factory.mktemp("console"), postgres_database)
    upgrade(url)
    settings = settings_for(
        url,
        allowed_networks="127.0.0.0/8",
        preferred_url_scheme="http",
        retry_schedule="0.2",
        retry_jitter=0,
        sweep_interval=0.1,
        http_timeout=3,
        console_poll_interval=0.25,
    )
    runtime = create_runtime(settings)
    embedded = start_embedded(runtime)
    try:
        with serving(runtime) as base_url:
            yield ConsoleServer(runtime, base_url, console_receiver, request.param)
    finally:
        embedded.stop()
        runtime.close()


@pytest.fixture
def receiver(console_server: ConsoleServer) -> Iterator[Receiver]:
    """The session's receiver, answering 200 with nothing recorded, and so again after."""
    receiver = console_server.receiver
    with receiver.lock:
        receiver.requests.clear()
        receiver.status = 200
    yield receiver
    receiver.status = 200


@dataclass
class Guarded:
    page: Page
    offsite: list[str] = field(default_factory=list)


@contextmanager
def guarded_page(browser: Browser, **context_options: Any) -> Iterator[Guarded]:
    """A page in a new context (no cookies) that refuses and records off-loopback requests."""
    context = browser.new_context(**context_options)
    guard = Guarded(page=context.new_page())

    def refuse(route: Route) -> None:
        guard.offsite.append(route.request.url)
        route.abort()

    # Matched inside the browser driver: loopback requests are not routed through Python
    # at all, which keeps every page load as fast as it is without the guard.
    context.route(OFF_LOOPBACK, refuse)
    context.set_default_timeout(10_000)
    try:
        yield guard
    finally:
        context.close()


@pytest.fixture
def guarded(browser: Browser) -> Iterator[Guarded]:
    with guarded_page(browser, viewport={"width": 1280, "height": 900}) as guard:
        yield guard


@pytest.fixture
def page(guarded: Guarded) -> Page:
    return guarded.page


@pytest.fixture
def console_page(guarded: Guarded) -> Iterator[Page]:
    """A page for the console: the test fails if anything was fetched from off loopback."""
    yield guarded.page
    assert guarded.offsite == [], f"the console asked for {guarded.offsite}"


@pytest.fixture
def browser_phone(browser: Browser) -> Iterator[Page]:
    """A console page the size of a phone (390 by 844, touch), guarded like ``console_page``."""
    options = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
    with guarded_page(browser, **options) as guard:
        yield guard.page
        assert guard.offsite == [], f"the console asked for {guard.offsite}"


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("DISPATCHER_SCREENSHOTS")
    directory = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


Shoot = Callable[[Page, str], Path]


@pytest.fixture
def shoot(screenshot_dir: Path, console_server: ConsoleServer) -> Shoot:
    def save(page: Page, name: str) -> Path:
        path = screenshot_dir / f"{console_server.backend}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


def sign_in(page: Page, server: ConsoleServer, secret: str, path: str = "/console/") -> None:
    """Open ``path``, which asks for a token, and sign in through the form."""
    response = page.goto(server.url(path))
    assert response is not None and response.status == 401
    page.get_by_label("Token").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
