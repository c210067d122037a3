"""``/docs`` and ``/redoc`` in headless chromium list the API's operations, with nothing from
off loopback (the network here reaches no CDN, as an operator's closed network would not)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ConsoleServer, Guarded

SUMMARY = "List the notifications of a repository"
ONE_BACKEND = pytest.mark.parametrize("console_server", ["sqlite"], indirect=True)


@ONE_BACKEND
def test_docs_list_the_operations_offline(
    guarded: Guarded, page: Page, console_server: ConsoleServer
) -> None:
    page.goto(console_server.url("/docs"))
    operations = page.locator(".opblock")
    page.wait_for_load_state("networkidle")
    expect(operations.first).to_be_visible()
    path = "/api/v1/repository/{namespace}/{repository}/notification/"
    expect(page.get_by_text(path).first).to_be_visible()
    assert operations.count() >= 6
    expect(page.get_by_role("button", name="Authorize", exact=True)).to_be_visible()
    assert guarded.offsite == []


@ONE_BACKEND
def test_redoc_lists_the_operations(
    guarded: Guarded, page: Page, console_server: ConsoleServer
) -> None:
    page.goto(console_server.url("/redoc"))
    expect(page.get_by_role("heading", name=SUMMARY)).to_be_visible()


@ONE_BACKEND
def test_redoc_asks_nothing_from_off_loopback(
    guarded: Guarded, page: Page, console_server: ConsoleServer
) -> None:
    page.goto(console_server.url("/redoc"))
    expect(page.get_by_role("heading", name=SUMMARY)).to_be_visible()
    page.wait_for_load_state("networkidle")  # what Redoc fetches after it has drawn
    assert guarded.offsite == []
