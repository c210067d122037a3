"""The README's console walkthrough as written: ``dispatcher serve`` with no settings,
``dispatcher repos add`` and ``dispatcher tokens create`` from another shell, then the
browser opens ``/console`` and signs in with the printed token."""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import Browser, expect

from tests.browser.conftest import guarded_page
from tests.conftest import free_port
from tests.integration.test_embedded import run, serving


def test_readme_console_walkthrough(browser: Browser, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCHER_")}
    env["DISPATCHER_DATABASE_URL"] = f"sqlite:///{tmp_path / 'dispatcher.db'}"
    env["DISPATCHER_PORT"] = str(free_port())  # the README's 8000, free on any machine
    with serving(env, tmp_path / "serve.log"):
        run(env, "repos", "add", "acme/web")
        token = run(env, "tokens", "create", "--scope", "repo:admin", "--repo", "acme/*",
                    "--name", "console").strip()  # fmt: skip
        with guarded_page(browser) as guard:
            page = guard.page
            response = page.goto(f"http://127.0.0.1:{env['DISPATCHER_PORT']}/console")
            assert response is not None and response.status == 401
            assert page.url.endswith("/console/")
            page.get_by_label("Token").fill(token)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("heading", name="Repositories")).to_be_visible()
            page.get_by_role("link", name="acme/web").click()
            expect(page.get_by_role("heading", name="Create a notification")).to_be_visible()
            assert guard.offsite == []
