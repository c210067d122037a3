"""``/docs`` in headless chromium lists the API's operations, with nothing from off loopback
(the network here reaches no CDN, as an operator's closed network would not)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ConsoleServer, Guarded


@pytest.mark.xfail(strict=True, reason="served from a CDN until issue 11 lands")
@pytest.mark.parametrize("console_server", ["sqlite"], indirect=True)
def test_docs_list_the_operations_offline(
    guarded: Guarded, page: Page, console_server: ConsoleServer
) -> None:
    page.goto(console_server.url("/docs"))
    operations = page.locator(".opblock")
    expect(operations.first).to_be_visible(timeout=5_000)
    expect(
        page.get_by_text("/api/v1/repository/{namespace}/{repository}/notification/").first
    ).to_be_visible()
    assert operations.count() >= 6
    assert guarded.offsite == []
