"""How ``dispatcher serve`` runs the API: uvicorn on h11, with the request head bounded.

* The request line and headers together may take at most ``settings.max_header_bytes``; h11
  stops buffering there, and the client gets 431 (uvicorn alone would answer 400, or with
  httptools buffer any size).
* uvicorn's own loggers (``uvicorn.error``, ``uvicorn.access``) are not configured by uvicorn:
  they reach the root handler of :func:`dispatcher.ops.logs.configure_logging`, so every line the
  server prints has our format and goes through the secret scrubber.

The request body is bounded in size and time by :class:`dispatcher.api.limits.BodyLimit`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from dispatcher.config import Settings

HEAD_TOO_LARGE = b"Request header fields too large"


class _Connection(h11.Connection):
    """h11's server connection, remembering whether it refused a request head as too long
    (h11 marks that refusal with status hint 431)."""

    head_too_large = False

    def next_event(self) -> Any:
        try:
            return super().next_event()
        except h11.RemoteProtocolError as exc:
            self.head_too_large = exc.error_status_hint == 431
            raise


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol answering 431, not 400, to a request head over the limit."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.conn = _Connection(h11.SERVER, config.h11_max_incomplete_event_size or 16_384)

    def send_400_response(self, msg: str) -> None:
        if not isinstance(self.conn, _Connection) or not self.conn.head_too_large:
            super().send_400_response(msg)
            return
        self.logger.warning("Request refused: its header fields are larger than the limit")
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]
        for event in (
            h11.Response(status_code=431, headers=headers, reason=HEAD_TOO_LARGE),
            h11.Data(data=HEAD_TOO_LARGE),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.close()


def server_config(app: Any, settings: Settings, *, host: str, port: int) -> uvicorn.Config:
    """The uvicorn configuration of the API server for ``settings``."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=BoundedH11Protocol,
        h11_max_incomplete_event_size=settings.max_header_bytes,
        log_config=None,
        log_level=settings.log_level.lower(),
        lifespan="off",
    )
