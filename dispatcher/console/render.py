"""Server-rendered pages: the Jinja2 environment over ``templates/console/`` and the helpers
every console response goes through, so each one carries the session cookie when it changed
and the same security headers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from dispatcher.config import packaged_templates_dir
from dispatcher.console.session import COOKIE, SessionCodec, Visitor

# What a console page may load: its own stylesheet and script, nothing inline, nothing from
# another origin, and no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

NOTICES = {
    "created": "Notification created.",
    "tested": "Test delivery queued.",
    "reset": "Failures reset; the notification is enabled.",
    "deleted": "Notification deleted.",
    "redelivered": "Redelivery queued.",
    "signed-in": "Signed in.",
}


def console_templates_dir() -> Path:
    """Where the console's pages live: ``console/`` of the templates that ship in the package
    (``dispatcher.templates``), not ``DISPATCHER_TEMPLATES_DIR``, which replaces messages
    only."""
    return packaged_templates_dir() / "console"


def make_environment(directory: Path) -> Environment:
    env = Environment(
        loader=FileSystemLoader(directory),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["iso"] = _iso
    return env


class Pages:
    """Renders pages and redirects for one console app."""

    def __init__(self, env: Environment, codec: SessionCodec, poll_interval: float) -> None:
        self.env = env
        self.codec = codec
        self.poll_ms = int(poll_interval * 1000)

    def page(
        self,
        request: Request,
        template: str,
        *,
        status: int = 200,
        visitor: Visitor | None = None,
        **context: Any,
    ) -> Response:
        visitor = visitor or visitor_of(request, self.codec)
        base = base_path(request)
        notice = request.query_params.get("notice", "")
        body = self.env.get_template(template).render(
            base=base,
            csrf=visitor.csrf,
            signed_in=visitor.token is not None,
            notice=NOTICES.get(notice, ""),
            poll_ms=self.poll_ms,
            **context,
        )
        return self.finish(request, HTMLResponse(body, status_code=status), visitor)

    def redirect(
        self, request: Request, path: str, *, notice: str | None = None, **query: str
    ) -> Response:
        """303 to ``path`` under the console (with ``notice`` and ``query`` in its query)."""
        if notice is not None:
            query["notice"] = notice
        target = base_path(request) + path + (f"?{urlencode(query)}" if query else "")
        response = RedirectResponse(target, status_code=303)
        return self.finish(request, response, visitor_of(request, self.codec))

    def finish(self, request: Request, response: Response, visitor: Visitor) -> Response:
        self.codec.write(response, visitor, base_path(request))
        response.headers["Cache-Control"] = "no-store"
        return response


def visitor_of(request: Request, codec: SessionCodec) -> Visitor:
    """The request's visitor, read from its cookie once per request."""
    visitor: Visitor | None = getattr(request.state, "visitor", None)
    if visitor is None:
        visitor = codec.read(request.cookies.get(COOKIE))
        request.state.visitor = visitor
    return visitor


def base_path(request: Request) -> str:
    """The console's path prefix as mounted (``/console``)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _iso(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).isoformat()
