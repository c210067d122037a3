"""Helpers for the delivery-pipeline unit tests: a migrated SQLite file per test, a scripted
fake sender, and shortcuts to add notifications."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import select

from dispatcher.db import upgrade
from dispatcher.errors import PermanentDeliveryError, TransientDeliveryError
from dispatcher.models import Attempt, Delivery, Notification, Repository
from dispatcher.pipeline.attempt import Outcome, attempt
from dispatcher.pipeline.claim import Job, claim
from dispatcher.pipeline.record import record
from dispatcher.pipeline.sweep import sweep
from dispatcher.runtime import Runtime, create_runtime
from dispatcher.senders.base import Receipt, RenderContext, Sender
from dispatcher.service import emit as producer
from dispatcher.service.repositories import find_repository
from tests.conftest import empty_tables, settings_for
from tests.doubles import RecordingDoorbell

_TEMPLATE: dict[str, Path] = {}
_TEMPLATE_LOCK = threading.Lock()


def migrated_sqlite(tmp_path: Path, template_dir: Path) -> str:
    """A fresh, migrated SQLite database (copied from one migrated once per run)."""
    with _TEMPLATE_LOCK:
        if "db" not in _TEMPLATE:
            template = template_dir / "template.db"
            upgrade(f"sqlite:///{template}")
            _TEMPLATE["db"] = template
    target = tmp_path / "dispatcher.db"
    shutil.copy(_TEMPLATE["db"], target)
    return f"sqlite:///{target}"


def runtime_emptied_after(database_url: str) -> Iterator[Runtime]:
    """For a fixture: a runtime on ``database_url`` (a backend's shared database), with every
    table emptied and the runtime closed afterwards."""
    runtime = make_runtime(database_url)
    try:
        yield runtime
    finally:
        empty_tables(runtime)
        runtime.close()


def make_runtime(database_url: str, **overrides: Any) -> Runtime:
    """The shared test settings with a short retry schedule, no jitter and a small pool."""
    values: dict[str, Any] = {
        "retry_schedule": "10,60",
        "retry_jitter": 0.0,
        "worker_send_concurrency": 4,
        "worker_per_host_concurrency": 2,
        "record_interval": 0.005,
    }
    values.update(overrides)
    return create_runtime(settings_for(database_url, **values), doorbell=RecordingDoorbell())


def attempt_now(job: Job, sender: Sender) -> Outcome:
    """:func:`~dispatcher.pipeline.claim.attempt` of ``job`` with ``sender``, on a fresh loop."""
    return asyncio.run(attempt(job, {sender.method: sender}))


class FakeSender:
    """A webhook-like sender whose ``send`` follows ``config["script"]``: a list of
    ``"ok"``, ``"transient"``, ``"transient:<retry_after>"``, ``"permanent"``, ``"boom"``
    (a bug) or ``"block"`` (waits for :attr:`release`), one per attempt, the last repeated."""

    method: ClassVar[str] = "webhook"

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._attempts: dict[str, int] = {}

    def target_key(self, config: dict[str, Any]) -> str:
        return str(config.get("url", ""))

    def describe(self, config: dict[str, Any]) -> str:
        return str(config.get("url", ""))

    def render(self, context: RenderContext, config: dict[str, Any]) -> dict[str, Any]:
        return {"id": context.delivery_id, "data": context.data, "config": config}

    async def send(self, message: dict[str, Any]) -> Receipt:
        script = message["config"].get("script", ["ok"])
        with self._lock:
            count = self._attempts.get(message["id"], 0)
            self._attempts[message["id"]] = count + 1
        step = script[min(count, len(script) - 1)]
        if step == "block":
            # wait without blocking the pool's event loop (other targets keep sending)
            deadline = time.monotonic() + 10
            while not self.release.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            step = "ok"
        if step.startswith("transient"):
            _, _, after = step.partition(":")
            raise TransientDeliveryError(
                "HTTP 503", status_code=503, retry_after=float(after) if after else None
            )
        if step == "permanent":
            raise PermanentDeliveryError("HTTP 404", status_code=404, response_excerpt="nope")
        if step == "boom":
            raise RuntimeError("a bug")
        with self._lock:
            self.sent.append(message)
        return Receipt(status_code=200, response_excerpt="ok")


def add_repository(runtime: Runtime, full_name: str = "acme/web") -> int:
    namespace, name = full_name.split("/")
    with runtime.sessions.begin() as session:
        repository = Repository(namespace=namespace, name=name)
        session.add(repository)
        session.flush()
        return repository.id


def add_notification(
    runtime: Runtime,
    repository_id: int,
    *,
    event: str = "repo_push",
    config: dict[str, Any] | None = None,
    event_config: dict[str, Any] | None = None,
    disabled: bool = False,
    title: str | None = None,
) -> int:
    from dispatcher.models import utcnow

    with runtime.sessions.begin() as session:
        notification = Notification(
            repository_id=repository_id,
            event=event,
            method="webhook",
            config=config or {"url": "http://hook.example/a"},
            event_config=event_config or {},
            number_of_failures=3 if disabled else 0,
            disabled_at=utcnow() if disabled else None,
            title=title,
        )
        session.add(notification)
        session.flush()
        return notification.id


# -- shortcuts of the pipeline and worker tests -------------------------------------------------


def notify(runtime: Runtime, script: list[str] | None = None, **kwargs: Any) -> int:
    repo_id = _repo(runtime)
    config = {"url": kwargs.pop("url", "http://hook.example/a"), "script": script or ["ok"]}
    return add_notification(runtime, repo_id, config=config, **kwargs)


def _repo(runtime: Runtime) -> int:
    with runtime.sessions() as session:
        found = find_repository(session, "acme", "web")
        if found is not None:
            return found.id
    return add_repository(runtime)


def emit(runtime: Runtime) -> list[str]:
    result = producer.emit(
        runtime.sessions, runtime.settings, runtime.doorbell, "acme/web", "repo_push", {}
    )
    return list(result.delivery_ids)


def run_once(runtime: Runtime, sender: FakeSender, ids: list[str], **kwargs: Any) -> list[Outcome]:
    """Claim, attempt and record ``ids`` synchronously."""
    jobs = claim(runtime.sessions, ids, runtime.settings, now=kwargs.get("now"))
    outcomes = [attempt_now(job, sender) for job in jobs]
    record(runtime.sessions, outcomes, runtime.settings, now=kwargs.get("now"))
    return outcomes


def delivery(runtime: Runtime, delivery_id: str) -> Delivery:
    with runtime.sessions() as session:
        return session.get_one(Delivery, delivery_id)


def notification(runtime: Runtime, notification_id: int) -> Notification:
    with runtime.sessions() as session:
        return session.get_one(Notification, notification_id)


def attempts(runtime: Runtime, delivery_id: str) -> list[Attempt]:
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(Attempt).where(Attempt.delivery_id == delivery_id).order_by(Attempt.number)
            )
        )


def sweep_now(runtime: Runtime, now: datetime | None = None) -> int:
    """One sweep of ``runtime``'s database, ringing its doorbell."""
    return sweep(runtime.sessions, runtime.settings, runtime.doorbell, now=now)


def make_job(**fields: Any) -> Job:
    """A claimed delivery of ``repo_push`` to a webhook, with ``fields`` changed."""
    values: dict[str, Any] = {
        "delivery_id": "d",
        "claim_token": "t",
        "lease_until": datetime(2030, 1, 1, tzinfo=UTC),
        "kind": "event",
        "attempt_number": 1,
        "notification_id": 7,
        "notification_uuid": "n",
        "method": "webhook",
        "config": {},
        "title": None,
        "event_name": "repo_push",
        "data": {},
        "namespace": "acme",
        "repository": "web",
    }
    values.update(fields)
    return Job(**values)
