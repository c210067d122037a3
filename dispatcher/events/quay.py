"""Quay's eleven repository events: push, the five build events, vulnerability_found, the
three mirror events and repo_image_expiry, with Quay's summaries, samples, eventConfig fields
and filters."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from dispatcher.bounds import compile_pattern
from dispatcher.configfields import ConfigField
from dispatcher.errors import InvalidFieldError, InvalidRequestError
from dispatcher.events.base import Data, EventType, parse_count

if TYPE_CHECKING:
    from dispatcher.config import Settings

# Quay's severity table, index = the ``level`` of a vulnerability_found eventConfig.
SEVERITIES = ("Critical", "High", "Medium", "Low", "Negligible", "Unknown")

_BUILD_PREFIXES = {
    "build_queued": ("Build queued", "info"),
    "build_start": ("Build started", "info"),
    "build_success": ("Build succeeded", "success"),
    "build_failure": ("Build failure", "error"),
    "build_cancelled": ("Build cancelled", "info"),
}
_MIRROR_WORDS = {
    "repo_mirror_sync_started": ("started", "info"),
    "repo_mirror_sync_success": ("success", "success"),
    "repo_mirror_sync_failed": ("failed", "error"),
}


# -- repo_push ---------------------------------------------------------------------------------


def _push_sample(_config: Data, _now: datetime) -> Data:
    return {"updated_tags": ["latest", "foo"], "pruned_image_count": 3}


# -- build events ------------------------------------------------------------------------------


REF_REGEX = ConfigField(
    name="ref-regex",
    label="Ref regex",
    help="Only builds whose git ref matches from the start, e.g. refs/heads/main",
    example="refs/heads/.*",
)


def _validate_build_config(config: Data, settings: Settings) -> None:
    regex = config.get("ref-regex")
    if regex is None:
        return
    where = ("eventConfig", "ref-regex")
    if not isinstance(regex, str):
        raise InvalidFieldError("eventConfig 'ref-regex' must be a string", location=where)
    try:
        compile_pattern(regex, settings.max_expression_chars)
    except InvalidRequestError as exc:
        raise InvalidFieldError(f"Invalid ref-regex: {exc.message}", location=where) from None


def _build_should_deliver(config: Data, data: Data, settings: Settings) -> bool:
    """Quay's filter: the ref must match ``ref-regex`` from its start. A stored pattern that
    the engine refuses (written before patterns were checked) never fires, as in Quay."""
    regex = (config or {}).get("ref-regex")
    if not regex:
        return True
    metadata = data.get("trigger_metadata")
    ref = metadata.get("ref") if isinstance(metadata, dict) else None
    if not ref or not isinstance(regex, str) or not isinstance(ref, str):
        return False
    try:
        pattern = compile_pattern(regex, settings.max_expression_chars)
    except InvalidRequestError:
        return False
    return pattern.match(ref) is not None


def _commit_info(now: datetime) -> Data:
    return {
        "url": "http://path/to/the/commit",
        "message": "Some commit message",
        "date": now.timestamp(),
        "author": {
            "username": "fakeauthor",
            "url": "http://path/to/fake/author/in/scm",
            "avatar_url": "http://www.gravatar.com/avatar/fakehash",
        },
    }


def _build_sample(event: str) -> Callable[[Data, datetime], Data]:
    def sample(_config: Data, now: datetime) -> Data:
        data: Data = {
            "build_id": "fake-build-id",
            "build_name": "some-fake-build",
            "docker_tags": ["latest", "foo", "bar"],
            "trigger_id": "1245634",
            "trigger_kind": "GitHub",
            "trigger_metadata": {
                "default_branch": "master",
                "ref": "refs/heads/somebranch",
                "commit": "42d4a62c53350993ea41069e9f2cfdefb0df097d",
            },
        }
        if event == "build_queued":
            data["is_manual"] = False
        if event in ("build_queued", "build_failure"):
            data["trigger_metadata"]["commit_info"] = _commit_info(now)
        if event in ("build_success", "build_cancelled"):
            data["image_id"] = "1245657346"
        if event == "build_failure":
            data["error_message"] = "This is a fake error message"
        return data

    return sample


def _build_event(name: str) -> EventType:
    prefix, level = _BUILD_PREFIXES[name]
    return EventType(
        name=name,
        title=prefix,
        level=lambda _data: level,
        summary=lambda data: (
            f"{prefix} for repository {data['repository']} [{str(data['build_id'])[:7]}]"
        ),
        sample=_build_sample(name),
        subpage=lambda data: f"/build/{data['build_id']}" if data.get("build_id") else None,
        validate_config=_validate_build_config,
        config_fields=(REF_REGEX,),
        should_deliver=_build_should_deliver,
    )


# -- vulnerability_found -----------------------------------------------------------------------


LEVEL = ConfigField(
    name="level",
    label="Minimum severity",
    widget="select",
    integer=True,
    help="Only vulnerabilities at least this severe",
    choices=tuple((str(index), name) for index, name in enumerate(SEVERITIES)),
    example="1",
)


def _validate_vulnerability_config(config: Data, _settings: Settings) -> None:
    if "level" not in config:
        return
    level = parse_count(config["level"])
    if level is None or not 0 <= level < len(SEVERITIES):
        raise InvalidFieldError(
            "eventConfig 'level' must be an integer from 0 (Critical) to 5 (Unknown)",
            location=("eventConfig", "level"),
        )


def _vulnerability_should_deliver(config: Data, data: Data, _settings: Settings) -> bool:
    if "level" not in (config or {}):
        return True
    if data.get("vulnerable_index_report_created"):
        return True
    vulnerability = data.get("vulnerability")
    if not isinstance(vulnerability, dict):
        return False
    priority = vulnerability.get("priority")
    if priority not in SEVERITIES:
        return False
    level = parse_count(config["level"])
    return level is not None and SEVERITIES.index(priority) <= level


def _vulnerability_level(data: Data) -> str:
    priority = data["vulnerability"]["priority"]
    if priority == "Critical":
        return "error"
    if priority in ("High", "Medium"):
        return "warning"
    return "info"


def _vulnerability_summary(data: Data) -> str:
    tag_count = len(data.get("tags") or [])
    vulnerabilities = data.get("vulnerabilities")
    if isinstance(vulnerabilities, list) and vulnerabilities:
        top = vulnerabilities[0].get("priority", "Unknown")
        same = sum(1 for item in vulnerabilities if item.get("priority", "Unknown") == top)
        text = f"{same} {top}"
        if len(vulnerabilities) > same:
            text += f" and {len(vulnerabilities) - same} more"
        return (
            f"{text} vulnerabilities were detected in repository {data['repository']} "
            f"in {tag_count} tags"
        )
    priority = data["vulnerability"]["priority"]
    return (
        f"{priority} vulnerability detected in repository {data['repository']} in {tag_count} tags"
    )


def _vulnerability_sample(config: Data, _now: datetime) -> Data:
    level = parse_count(config.get("level")) if config else None
    priority = (
        SEVERITIES[level] if level is not None and 0 <= level < len(SEVERITIES) else "Unknown"
    )
    return {
        "tags": ["latest", "prod", "foo", "bar", "baz"],
        "image": "some-image-id",
        "vulnerability": {
            "id": "CVE-FAKE-CVE",
            "description": "A futurist vulnerability",
            "link": "https://security-tracker.debian.org/tracker/CVE-FAKE-CVE",
            "priority": priority,
        },
    }


# -- mirror events -----------------------------------------------------------------------------


def _mirror_event(name: str) -> EventType:
    word, level = _MIRROR_WORDS[name]
    return EventType(
        name=name,
        title=f"Repository mirror {word}",
        level=lambda _data: level,
        summary=lambda data: f"Repository Mirror {word} for {data['message']}",
        sample=lambda _config, _now: {"message": "TEST NOTIFICATION"},
    )


# -- repo_image_expiry -------------------------------------------------------------------------


# A hundred years: any longer horizon is the same in practice, and a bound keeps the date
# arithmetic of a fan-out from overflowing.
MAX_EXPIRY_DAYS = 36500


def expiry_days(config: Data) -> int | None:
    """The ``days`` of a repo_image_expiry eventConfig (an integer or a numeric string, as
    Quay takes it), or None when it is not a whole number from 1 to :data:`MAX_EXPIRY_DAYS`."""
    days = parse_count(config.get("days"))
    if days is None or not 0 < days <= MAX_EXPIRY_DAYS:
        return None
    return days


DAYS = ConfigField(
    name="days",
    label="Days before expiry",
    widget="number",
    required=True,
    integer=True,
    help=f"Announce tags that expire within this many days (at most {MAX_EXPIRY_DAYS})",
    example="7",
)


def _validate_expiry_config(config: Data, _settings: Settings) -> None:
    where = ("eventConfig", "days")
    if "days" not in config:
        raise InvalidFieldError(
            "eventConfig 'days' is required for repo_image_expiry", location=where
        )
    if expiry_days(config) is None:
        raise InvalidFieldError(
            f"eventConfig 'days' must be a positive integer (at most {MAX_EXPIRY_DAYS})",
            location=where,
        )


def _expiry_sample(config: Data, _now: datetime) -> Data:
    return {"tags": ["latest", "v1"], "expiring_in": f"{config.get('days')} days"}


# -- Quay's eleven, in the order of Quay's catalogue -------------------------------------------

QUAY_EVENTS: tuple[EventType, ...] = (
    EventType(
        name="repo_push",
        title="Push to Repository",
        level=lambda _data: "primary",
        summary=lambda data: f"Repository {data['repository']} updated",
        sample=_push_sample,
    ),
    *(_build_event(name) for name in _BUILD_PREFIXES),
    EventType(
        name="vulnerability_found",
        title="Package Vulnerability Found",
        level=_vulnerability_level,
        summary=_vulnerability_summary,
        sample=_vulnerability_sample,
        validate_config=_validate_vulnerability_config,
        config_fields=(LEVEL,),
        should_deliver=_vulnerability_should_deliver,
    ),
    *(_mirror_event(name) for name in _MIRROR_WORDS),
    EventType(
        name="repo_image_expiry",
        title="Image expiry trigger",
        level=lambda _data: "info",
        summary=lambda data: f"Repository {data['repository']} image(s) expiring",
        sample=_expiry_sample,
        validate_config=_validate_expiry_config,
        config_fields=(DAYS,),
    ),
)

__all__ = ["MAX_EXPIRY_DAYS", "QUAY_EVENTS", "SEVERITIES", "expiry_days"]
