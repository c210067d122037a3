"""The request body, read whole and bounded before any route runs.

:class:`BodyLimit` reads the body of every request that has one before the application sees
the request: at most ``settings.max_request_bytes`` (413 beyond, without reading the rest of a
body whose ``Content-Length`` already says so) within ``settings.request_body_timeout`` seconds
(408 beyond). Routes then read it from memory. So a client that sends its body slowly holds a
socket and a coroutine, never a database connection or a worker thread: authentication and
everything after it start only once the body is complete.
"""

from __future__ import annotations

import asyncio
import time

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dispatcher.api.problems import problem_response
from dispatcher.config import Settings
from dispatcher.errors import RequestTooLargeError


class BodyLimit:
    """ASGI middleware: buffer and bound request bodies (see the module docstring)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.max_bytes = settings.max_request_bytes
        self.timeout = settings.request_body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, send, 413, RequestTooLargeError(self.max_bytes).message)
            return
        body = bytearray()
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                message = await asyncio.wait_for(receive(), deadline - time.monotonic())
            except TimeoutError:
                await self._refuse(
                    scope, send, 408, f"Request body not received within {self.timeout:g} s"
                )
                return
            if message["type"] == "http.disconnect":
                return
            body.extend(message.get("body", b""))
            if len(body) > self.max_bytes:
                await self._refuse(scope, send, 413, RequestTooLargeError(self.max_bytes).message)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(bytes(body), receive), send)

    async def _refuse(self, scope: Scope, send: Send, status: int, detail: str) -> None:
        response = problem_response(Request(scope), status, detail)
        # The rest of the body is never read: the connection cannot carry another request.
        response.headers["connection"] = "close"
        await response(scope, _nothing, send)


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            text = value.strip()
            return int(text) if text.isdigit() and len(text) < 20 else None
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the buffered body, then waits for the disconnect."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _nothing() -> Message:
    return {"type": "http.disconnect"}
