"""The console is usable with a keyboard and a screen reader, and on a phone: every control
has a label, focus is visible, the option groups follow the chosen event and method, and no
page scrolls sideways on a narrow screen."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import ConsoleServer, Shoot, sign_in
from tests.integration.conftest import Receiver

UNLABELLED = """() => Array.from(document.querySelectorAll(
    'input:not([type=hidden]), select, textarea, button, a[href]'))
  .filter((el) => el.offsetParent !== null)
  .filter((el) => {
    const name = (el.labels && el.labels.length ? el.labels[0].textContent : '')
      || el.getAttribute('aria-label') || el.textContent;
    return !name || !name.trim();
  })
  .map((el) => el.outerHTML.slice(0, 80))"""

OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"


def test_labels_focus_and_option_groups(
    console_page: Page, console_server: ConsoleServer, receiver: Receiver
) -> None:
    page = console_page
    repository = console_server.repository()
    _, secret = console_server.token(grants=(repository,))
    sign_in(page, console_server, secret, f"/console/repository/{repository}")
    assert page.evaluate(UNLABELLED) == []

    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none")

    page.get_by_label("Method").select_option("slack")
    expect(page.get_by_label("Slack webhook URL (required)", exact=True)).to_be_visible()
    expect(page.get_by_label("Webhook URL (required)", exact=True)).to_be_hidden()
    for event, field in (
        ("build_failure", "Ref regex"),
        ("vulnerability_found", "Minimum severity"),
        ("repo_image_expiry", "Days before expiry (required)"),
    ):
        page.get_by_label("Event").select_option(event)
        expect(page.get_by_label(field, exact=True)).to_be_visible()
        assert page.locator("fieldset[data-events]:not([disabled])").count() == 1
    page.get_by_label("Event").select_option("repo_push")
    assert page.locator("fieldset[data-events]:not([disabled])").count() == 0
    page.get_by_role("button", name="Create notification").click()
    expect(page.locator("#f-slack-url-error")).to_have_text("Missing Slack Callback URL")
    described = page.get_by_label("Slack webhook URL (required)", exact=True)
    expect(described).to_have_attribute("aria-describedby", "f-slack-url-help f-slack-url-error")


def test_pages_fit_a_phone(
    browser_phone: Page, console_server: ConsoleServer, receiver: Receiver, shoot: Shoot
) -> None:
    page = browser_phone
    repository = console_server.repository()
    _, secret = console_server.token(grants=(repository,))
    sign_in(page, console_server, secret, f"/console/repository/{repository}")
    assert page.evaluate(OVERFLOW) <= 0
    page.get_by_label("Title").fill("phone hook")
    page.get_by_label("Webhook URL (required)", exact=True).fill(
        receiver.url("/a/long/path/to/see/wrapping")
    )
    page.get_by_role("button", name="Create notification").click()
    page.get_by_role("button", name="Send test").click()
    expect(page.locator("tr[data-delivery] .badge")).to_have_text("succeeded")
    assert page.evaluate(OVERFLOW) <= 0
    shoot(page, "phone-notification")
    page.get_by_role("link", name="Details").click()
    expect(page.locator("table.attempts tbody tr")).to_have_count(1)
    assert page.evaluate(OVERFLOW) <= 0
    page.get_by_role("link", name=repository).click()
    assert page.evaluate(OVERFLOW) <= 0
    shoot(page, "phone-repository")
    page.get_by_role("link", name="Repositories").click()
    assert page.evaluate(OVERFLOW) <= 0
