"""Response headers added on the way out, for the API's and the console's middlewares."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def with_headers(send: Send, headers: Mapping[str, str]) -> Send:
    """``send``, adding ``headers`` to the response's start."""
    extra = [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ]

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return sending


class FixedHeaders:
    """ASGI middleware adding ``headers`` to every HTTP response, or to the responses of
    ``paths`` only when given."""

    def __init__(
        self, app: ASGIApp, headers: Mapping[str, str], paths: Collection[str] | None = None
    ) -> None:
        self.app = app
        self.headers = dict(headers)
        self.paths = set(paths) if paths is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.paths is not None and scope["path"] not in self.paths):
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, with_headers(send, self.headers))
