"""A console client for tests: a browser's side of the cookie (kept by hand, so the Secure
flag of an https deployment does not stop it over loopback) and of the CSRF token (read from
the last page)."""

from __future__ import annotations

import re
from html import unescape
from http.cookies import SimpleCookie
from typing import Any

import httpx

from dispatcher.console.session import COOKIE

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
ERROR = re.compile(r'<p class="error" id="([^"]+)-error">([^<]*)</p>')


class Console:
    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url + "/console", timeout=10)
        self.cookie = ""
        self.csrf = ""
        self.set_cookies: list[str] = []

    def close(self) -> None:
        self.http.close()

    def request(self, verb: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if self.cookie:
            headers["Cookie"] = f"{COOKIE}={self.cookie}"
        response = self.http.request(verb, path, headers=headers, **kwargs)
        self.http.cookies.clear()
        for header in response.headers.get_list("set-cookie"):
            self.set_cookies.append(header)
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            if COOKIE in jar:
                self.cookie = jar[COOKIE].value
        found = CSRF.search(response.text)
        if found:
            self.csrf = found.group(1)
        return response

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(
        self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True
    ) -> httpx.Response:
        fields = dict(data or {})
        if csrf:
            fields.setdefault("csrf", self.csrf)
        return self.request("POST", path, data=fields)

    def sign_in(self, secret: str) -> httpx.Response:
        """Sign in and, like a browser, open the page it leads to (for the new CSRF token)."""
        self.get("/sign-in")
        response = self.post("/sign-in", {"token": secret})
        if response.status_code == 303:
            self.get(response.headers["location"].removeprefix("/console"))
        return response


def field_errors(html: str) -> dict[str, str]:
    """``{input id: message}`` of the errors shown beside fields."""
    return {key: unescape(text) for key, text in ERROR.findall(html)}
