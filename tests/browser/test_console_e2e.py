"""The console end to end in headless chromium, on SQLite and PostgreSQL: sign in, create a
webhook notification, press test and see the attempt appear without a reload, make the
receiver fail until the notification is disabled and see it so, reset it, redeliver."""

from __future__ import annotations

import base64
import json

from playwright.sync_api import Page, expect

from tests.browser.conftest import ConsoleServer, Shoot, sign_in
from tests.integration.conftest import Receiver

MARK = "window.__sameDocument"


def cookie_payload(page: Page) -> dict[str, str]:
    """What the console's (signed, not encrypted) cookie holds."""
    (cookie,) = page.context.cookies()
    encoded = cookie["value"].split(".")[0]
    payload: dict[str, str] = json.loads(
        base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    )
    return payload


def mark_document(page: Page) -> None:
    """Tag the current document; a reload or navigation loses the tag."""
    page.evaluate(f"{MARK} = true")


def same_document(page: Page) -> bool:
    return bool(page.evaluate(f"{MARK} === true"))


def test_create_test_fail_disable_reset_redeliver(
    console_page: Page, console_server: ConsoleServer, receiver: Receiver, shoot: Shoot
) -> None:
    page = console_page
    repository = console_server.repository()
    namespace = repository.split("/")[0]
    _, secret = console_server.token(grants=(f"{namespace}/*",))

    sign_in(page, console_server, secret)
    expect(page.get_by_role("heading", name="Repositories")).to_be_visible()
    (cookie,) = page.context.cookies()
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/console")
    assert page.evaluate("() => document.cookie") == ""
    page.get_by_role("link", name=repository).click()

    # create: the form shows the webhook's settings and no option of another event
    expect(page.get_by_role("heading", name=repository)).to_be_visible()
    page.get_by_label("Event").select_option("repo_push")
    page.get_by_label("Method").select_option("webhook")
    expect(page.get_by_label("Ref regex")).to_be_hidden()
    expect(page.get_by_label("Slack webhook URL (required)", exact=True)).to_be_hidden()
    page.get_by_label("Title").fill("CI hook")
    page.get_by_label("Webhook URL (required)", exact=True).fill(receiver.url("/hook?token=s3cr3t"))
    page.get_by_role("button", name="Create notification").click()
    expect(page.get_by_role("status")).to_have_text("Notification created.")
    expect(page.get_by_role("heading", name="CI hook")).to_be_visible()
    expect(page.locator(".facts .target")).to_have_text(f"{receiver.url('/hook')}?***")

    # test: the attempt appears while we watch
    page.get_by_role("button", name="Send test").click()
    expect(page.get_by_role("status")).to_have_text("Test delivery queued.")
    mark_document(page)
    first = page.locator("tr[data-delivery]").first
    expect(first.locator(".badge")).to_have_text("succeeded")
    expect(first.locator(".attempt-count")).to_have_text("1")
    assert same_document(page)
    (request,) = receiver.wait_for(1)
    delivery_id = first.get_attribute("data-delivery")
    assert request.headers["webhook-id"] == delivery_id
    shoot(page, "notification")

    first.get_by_role("link", name="Details").click()
    attempts = page.locator("table.attempts tbody tr")
    expect(attempts).to_have_count(1)
    expect(attempts.first.locator("td[data-label='Status code']")).to_have_text("200")
    expect(page.locator("pre.body")).to_contain_text('"repository":')
    assert json.loads(page.locator("pre.body").inner_text()) == request.json()
    shoot(page, "delivery")

    # failing until disabled: three failed deliveries (each retried once) disable it
    receiver.status = 500
    page.get_by_role("link", name="CI hook", exact=True).click()
    for _ in range(3):
        page.get_by_role("button", name="Send test").click()
        expect(page.get_by_role("status")).to_have_text("Test delivery queued.")
    mark_document(page)
    expect(page.locator("#state .badge")).to_have_text("disabled", timeout=15_000)
    expect(page.locator("#failures")).to_have_text("3")
    expect(page.locator("tr[data-status='failed']")).to_have_count(3)
    assert same_document(page)
    shoot(page, "notification-disabled")

    page.get_by_role("link", name=repository).click()
    row = page.locator("tr", has=page.get_by_role("link", name="CI hook", exact=True))
    expect(row.locator("td[data-label='State'] .badge")).to_have_text("disabled")
    shoot(page, "repository")
    page.get_by_role("link", name="Repositories").click()
    listed = page.locator("tr", has=page.get_by_role("link", name=repository))
    expect(listed.locator("td[data-label='Disabled']")).to_have_text("1")
    shoot(page, "repositories")

    # reset it from its page
    page.get_by_role("link", name=repository).click()
    page.get_by_role("link", name="CI hook", exact=True).click()
    page.get_by_role("button", name="Reset failures").click()
    expect(page.get_by_role("status")).to_have_text("Failures reset; the notification is enabled.")
    expect(page.locator("#state .badge")).to_have_text("ok")
    expect(page.locator("#failures")).to_have_text("0")

    # redeliver a failed delivery once the receiver is fixed
    receiver.status = 200
    failed = page.locator("tr[data-status='failed']").first
    failed_id = failed.get_attribute("data-delivery")
    failed.get_by_role("link", name="Details").click()
    expect(page.locator("table.attempts tbody tr")).to_have_count(2)
    expect(page.locator("table.attempts tbody tr").first).to_contain_text("500")
    page.get_by_role("button", name="Redeliver").click()
    expect(page.get_by_role("status")).to_have_text("Redelivery queued.")
    mark_document(page)
    expect(page.locator("#delivery-status .badge")).to_have_text("succeeded")
    expect(page.locator("table.attempts tbody tr")).to_have_count(1)
    assert same_document(page)
    redelivered = receiver.wait_for(1 + 3 * 2 + 1)[-1]
    assert redelivered.headers["webhook-id"] not in (failed_id, delivery_id)
    assert f"/deliveries/{redelivered.headers['webhook-id']}?" in page.url
    assert redelivered.json()["repository"] == repository
    assert secret not in page.content() and secret not in page.url

    assert "token" in cookie_payload(page)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert "token" not in cookie_payload(page)  # the sign-in form's cookie holds its CSRF only


def test_delete_asks_first(
    console_page: Page, console_server: ConsoleServer, receiver: Receiver, shoot: Shoot
) -> None:
    page = console_page
    repository = console_server.repository()
    _, secret = console_server.token(grants=(repository,))
    sign_in(page, console_server, secret, f"/console/repository/{repository}")
    expect(page.get_by_role("heading", name=repository)).to_be_visible()
    page.get_by_label("Event").select_option("vulnerability_found")
    page.get_by_label("Method").select_option("email")
    page.get_by_label("Minimum severity").select_option(label="High")
    page.get_by_label("E-mail address (required)", exact=True).fill("not an address")
    page.get_by_role("button", name="Create notification").click()
    field = page.get_by_label("E-mail address (required)", exact=True)
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-email-email-error")).to_have_text("Invalid e-mail address")
    expect(page.get_by_label("Minimum severity")).to_have_value("1")
    shoot(page, "create-error")
    field.fill("ops@example.com")
    page.get_by_role("button", name="Create notification").click()
    expect(page.locator("#f-email-email-error")).to_contain_text("is not authorized")
    console_server.authorize_email(repository, "ops@example.com")
    page.get_by_label("E-mail address (required)", exact=True).fill("ops@example.com")
    page.get_by_role("button", name="Create notification").click()
    expect(page.get_by_role("status")).to_have_text("Notification created.")

    page.get_by_role("link", name=repository).click()
    page.get_by_role("link", name="Delete vulnerability_found").click()
    expect(page.get_by_role("heading", name="Delete this notification?")).to_be_visible()
    shoot(page, "delete")
    page.get_by_role("link", name="Cancel").click()
    expect(page.locator("tr[data-uuid]")).to_have_count(1)
    page.get_by_role("link", name="Delete vulnerability_found").click()
    page.get_by_role("button", name="Delete notification").click()
    expect(page.get_by_role("status")).to_have_text("Notification deleted.")
    expect(page.locator("tr[data-uuid]")).to_have_count(0)
