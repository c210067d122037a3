"""Jinja environments for the words users read, and the variables every message template gets.

Three sandboxed environments share one loader on ``settings.templates_dir`` (templates there may
be edited by operators, so they run in Jinja's sandbox), all with ``StrictUndefined`` so a
template that names a missing variable fails instead of printing nothing:

* ``html``: autoescaped, for e-mail HTML;
* ``text``: no escaping, for e-mail plain text;
* ``mrkdwn``: every ``{{ expression }}`` is escaped for Slack (``&``, ``<``, ``>``), while the
  template's own text keeps Slack markup such as ``<url|text>`` and ``*bold*``.

Environments are built once per templates directory and cached; templates are compiled on first
use and kept (no reload checks on the hot path). :func:`render` selects
``<method>/<event><suffix>`` or ``<method>/_default<suffix>`` and turns any template failure into
a :class:`~dispatcher.errors.PermanentDeliveryError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from dispatcher.config import Settings
from dispatcher.errors import PermanentDeliveryError

if TYPE_CHECKING:  # dispatcher.senders imports this module: a runtime import would be a cycle
    from dispatcher.senders.base import RenderContext

DEFAULT_TEMPLATE = "_default"
_MRKDWN_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def mrkdwn_escape(value: Any) -> str:
    """``value`` as text safe inside Slack mrkdwn (only ``&``, ``<`` and ``>`` are special)."""
    return str(value).translate(_MRKDWN_ESCAPES)


@dataclass(frozen=True)
class Environments:
    html: jinja2.Environment
    text: jinja2.Environment
    mrkdwn: jinja2.Environment


@lru_cache(maxsize=8)
def environments(templates_dir: Path) -> Environments:
    """The environments for ``templates_dir``, built once per directory."""
    loader = jinja2.FileSystemLoader(str(templates_dir))
    common: dict[str, Any] = {
        "loader": loader,
        "undefined": jinja2.StrictUndefined,
        "auto_reload": False,
        "trim_blocks": True,
        "lstrip_blocks": True,
    }
    return Environments(
        html=SandboxedEnvironment(autoescape=True, **common),
        text=SandboxedEnvironment(autoescape=False, **common),
        mrkdwn=SandboxedEnvironment(autoescape=False, finalize=mrkdwn_escape, **common),
    )


def render(
    env: jinja2.Environment, method: str, event: str, suffix: str, variables: Mapping[str, Any]
) -> str:
    """Render ``<method>/<event><suffix>`` (or the method's ``_default``) with ``variables``.

    Raises PermanentDeliveryError naming the template when it is missing or fails."""
    names = [f"{method}/{event}{suffix}", f"{method}/{DEFAULT_TEMPLATE}{suffix}"]
    try:
        template = env.select_template(names)
    except jinja2.TemplateError as exc:
        raise PermanentDeliveryError(f"template {names[0]} could not be loaded: {exc}") from None
    try:
        return template.render(variables)
    except Exception as exc:  # a template can fail in many ways; each one is the template's
        raise PermanentDeliveryError(
            f"template {template.name} failed: {type(exc).__name__}: {exc}"
        ) from None


def summary_of(context: RenderContext) -> str:
    """The event's one-line summary; PermanentDeliveryError if the event data lacks a field."""
    return _read_event(context, context.event.summary, "cannot be summarised")


def level_of(context: RenderContext) -> str:
    """The event's level; PermanentDeliveryError if the event data lacks a field."""
    return _read_event(context, context.event.level, "has no level")


def _read_event(context: RenderContext, read: Callable[[dict[str, Any]], str], failure: str) -> str:
    try:
        return read(context.data)
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        raise PermanentDeliveryError(
            f"event data for {context.event.name} {failure}: missing or bad {exc}"
        ) from None


def message_variables(context: RenderContext, settings: Settings) -> dict[str, Any]:
    """What every message template may read.

    ``event``, ``title`` (the event's), ``summary``, ``level``, ``data`` (the event data),
    ``namespace``, ``name``, ``repository`` (``ns/name``), ``repository_url``, ``performer``
    (user name or None), ``notification_title`` (or None), ``tag_url(tag)``."""
    repository_url = (
        f"{settings.preferred_url_scheme}://{settings.server_hostname}"
        f"/repository/{quote(context.namespace)}/{quote(context.repository)}"
    )

    def tag_url(tag: Any) -> str:
        return f"{repository_url}?{urlencode({'tag': str(tag), 'tab': 'tags'})}"

    performer = (context.performer or {}).get("entity_name") or None
    return {
        "event": context.event.name,
        "title": context.event.title,
        "summary": summary_of(context),
        "level": level_of(context),
        "data": context.data,
        "namespace": context.namespace,
        "name": context.repository,
        "repository": f"{context.namespace}/{context.repository}",
        "repository_url": repository_url,
        "performer": performer,
        "notification_title": context.title,
        "tag_url": tag_url,
    }
