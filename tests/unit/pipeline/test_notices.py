"""Failure notices, on SQLite and PostgreSQL: one ``notification_failing`` per step of a
streak and one ``notification_disabled``, to the repository's own subscribers and the
operator's, never about a notice, and the WARNING lines of failures and disables."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from sqlalchemy import delete, select

from dispatcher.models import Delivery, Event, Notification, Repository
from dispatcher.pipeline import notices as notices_module
from dispatcher.pipeline import record as record_module
from dispatcher.pipeline.claim import claim
from dispatcher.pipeline.notices import DISABLED, FAILING, OPERATOR_REPOSITORY, failure_steps
from dispatcher.pipeline.record import record
from dispatcher.runtime import Runtime
from dispatcher.service import emit as producer
from dispatcher.service import notifications
from dispatcher.service.notices import sync_operator_notices
from tests.unit.pipeline_helpers import (
    FakeSender,
    add_notification,
    add_repository,
    attempt_now,
    emit,
    notify,
    run_once,
)


def listen(runtime: Runtime, repository: str = "acme/web", **kwargs: Any) -> dict[str, int]:
    """A notification of each notice event in ``repository``: ``{event: id}``."""
    with runtime.sessions() as session:
        namespace, name = repository.split("/")
        found = session.scalars(
            select(Repository.id).where(Repository.namespace == namespace, Repository.name == name)
        ).one_or_none()
    repository_id = found if found is not None else add_repository(runtime, repository)
    return {
        event: add_notification(
            runtime, repository_id, event=event, config={"url": f"http://notices/{event}"}, **kwargs
        )
        for event in ("notification_failing", "notification_disabled")
    }


def notices_of(runtime: Runtime, notification_id: int) -> list[dict[str, Any]]:
    """The event data of every delivery queued for ``notification_id``, oldest first."""
    with runtime.sessions() as session:
        rows = session.execute(
            select(Event.name, Event.data, Delivery.kind)
            .join(Delivery, Delivery.event_id == Event.id)
            .where(Delivery.notification_id == notification_id)
            .order_by(Delivery.created_at, Event.data["number_of_failures"].as_integer())
        ).all()
    return [{"event": name, "kind": kind, **data} for name, data, kind in rows]


def steps_of(runtime: Runtime, notification_id: int) -> list[int]:
    return [notice["number_of_failures"] for notice in notices_of(runtime, notification_id)]


def fail(runtime: Runtime, sender: FakeSender, times: int) -> list[str]:
    """Emit ``times`` events and let each delivery fail at once (a permanent error)."""
    ids: list[str] = []
    for _ in range(times):
        ids += emit(runtime)
    run_once(runtime, sender, ids)
    return ids


def test_each_step_of_a_streak_is_one_failing_notice_and_the_last_disables(
    runtime: Runtime, sender: FakeSender
) -> None:
    hook = notify(runtime, ["permanent"], title="Deploy hook")
    listeners = listen(runtime)
    first = fail(runtime, sender, 1)
    failing = notices_of(runtime, listeners["notification_failing"])
    assert [n["number_of_failures"] for n in failing] == [1]
    notice = failing[0]
    with runtime.sessions() as session:
        hook_uuid = session.get_one(Notification, hook).uuid
    assert notice["notification"] == {
        "uuid": hook_uuid,
        "title": "Deploy hook",
        "event": "repo_push",
        "method": "webhook",
        "target": "http://hook.example/a",
    }
    assert (notice["delivery_id"], notice["status_code"], notice["error"]) == (
        first[0],
        404,
        "HTTP 404",
    )
    assert (notice["max_failures"], notice["repository"], notice["kind"]) == (
        3,
        "acme/web",
        "event",
    )
    assert "reenable" not in notice
    assert notices_of(runtime, listeners["notification_disabled"]) == []

    fail(runtime, sender, 2)  # one batch: steps 2 and 3, and the disable
    assert [
        n["number_of_failures"] for n in notices_of(runtime, listeners["notification_failing"])
    ] == [1, 2, 3]
    (disabled,) = notices_of(runtime, listeners["notification_disabled"])
    assert disabled["number_of_failures"] == 3
    assert disabled["reenable"] == {
        "api": f"POST /api/v1/repository/acme/web/notification/{hook_uuid}",
        "cli": f"dispatcher notifications reset {hook_uuid}",
    }


def test_a_success_between_failures_starts_the_streak_again(
    runtime: Runtime, sender: FakeSender
) -> None:
    hook = notify(runtime, ["permanent"])
    listeners = listen(runtime)

    def script(step: str) -> None:
        with runtime.sessions.begin() as session:
            row = session.get_one(Notification, hook)
            row.config = {**row.config, "script": [step]}

    fail(runtime, sender, 2)
    script("ok")
    run_once(runtime, sender, emit(runtime))
    script("permanent")
    fail(runtime, sender, 1)
    steps = [
        n["number_of_failures"] for n in notices_of(runtime, listeners["notification_failing"])
    ]
    assert sorted(steps) == [1, 1, 2]


def test_other_repositories_hear_nothing_and_a_disabled_listener_neither(
    runtime: Runtime, sender: FakeSender
) -> None:
    notify(runtime, ["permanent"])
    elsewhere = listen(runtime, "other/repo")
    asleep = listen(runtime, disabled=True)
    fail(runtime, sender, 3)
    for listener in (*elsewhere.values(), *asleep.values()):
        assert notices_of(runtime, listener) == []


def test_a_failing_notice_target_reports_nothing_about_itself(
    runtime: Runtime, sender: FakeSender
) -> None:
    """No loop: the notice notification fails too, and its failures make no notice."""
    notify(runtime, ["permanent"])
    with runtime.sessions() as session:
        repository_id = session.scalars(select(Repository.id)).one()
    broken = {
        event: add_notification(
            runtime,
            repository_id,
            event=event,
            config={"url": "http://notices/broken", "script": ["permanent"]},
        )
        for event in ("notification_failing", "notification_disabled")
    }
    fail(runtime, sender, 3)
    for _ in range(3):  # deliver every notice, each failing, and whatever they would queue
        with runtime.sessions() as session:
            pending = list(session.scalars(select(Delivery.id).where(Delivery.status == "pending")))
        if not pending:
            break
        run_once(runtime, sender, pending)
    with runtime.sessions() as session:
        events = session.scalars(select(Event.name)).all()
        counters = {
            nid: session.get_one(Notification, nid).number_of_failures for nid in broken.values()
        }
    # three failing notices and one disabled about the repo_push hook, nothing about the
    # notice notifications although they failed (and one of them was disabled)
    assert sorted(events).count("notification_failing") == 3
    assert sorted(events).count("notification_disabled") == 1
    assert counters[broken["notification_failing"]] == 3


def test_the_operator_hears_every_repository(runtime: Runtime, sender: FakeSender) -> None:
    settings = runtime.settings.model_copy(
        update={"notice_webhook": "http://ops.example/notices", "notice_email": "ops@example.com"}
    )
    assert sync_operator_notices(runtime.sessions, settings) == 4
    notify(runtime, ["permanent"])
    fail(runtime, sender, 3)
    with runtime.sessions() as session:
        namespace, name = OPERATOR_REPOSITORY
        operator = session.execute(
            select(Notification.id, Notification.event, Notification.method)
            .join(Repository)
            .where(Repository.namespace == namespace, Repository.name == name)
        ).all()
    assert sorted((event, method) for _, event, method in operator) == [
        ("notification_disabled", "email"),
        ("notification_disabled", "webhook"),
        ("notification_failing", "email"),
        ("notification_failing", "webhook"),
    ]
    for nid, event, _ in operator:
        assert steps_of(runtime, nid) == ([1, 2, 3] if event == FAILING else [3])


def test_syncing_the_operator_targets_adds_and_removes(runtime: Runtime) -> None:
    def operator_rows() -> list[tuple[str, str]]:
        with runtime.sessions() as session:
            return sorted(
                (n.method, n.event)
                for n in session.scalars(
                    select(Notification)
                    .join(Repository)
                    .where(Repository.namespace == "_dispatcher")
                )
            )

    webhook = runtime.settings.model_copy(update={"notice_webhook": "http://ops.example/a"})
    assert sync_operator_notices(runtime.sessions, webhook) == 2
    assert sync_operator_notices(runtime.sessions, webhook) == 2  # twice adds nothing
    assert operator_rows() == [
        ("webhook", "notification_disabled"),
        ("webhook", "notification_failing"),
    ]
    email = runtime.settings.model_copy(update={"notice_email": "ops@example.com"})
    sync_operator_notices(runtime.sessions, email)
    assert operator_rows() == [
        ("email", "notification_disabled"),
        ("email", "notification_failing"),
    ]
    sync_operator_notices(runtime.sessions, runtime.settings)
    assert operator_rows() == []


def test_warning_lines_say_a_delivery_failed_and_a_notification_was_disabled(
    runtime: Runtime, sender: FakeSender, caplog: pytest.LogCaptureFixture
) -> None:
    hook = notify(runtime, ["permanent"])
    with runtime.sessions() as session:
        hook_uuid = session.get_one(Notification, hook).uuid
    caplog.set_level(logging.WARNING, logger="dispatcher.failures")
    ids = fail(runtime, sender, 3)
    lines = [r for r in caplog.records if r.name == "dispatcher.failures"]
    failed = [r for r in lines if r.getMessage().startswith("delivery failed")]
    disabled = [r for r in lines if r.getMessage().startswith("notification disabled")]
    assert [r.levelno for r in lines] == [logging.WARNING] * 4
    assert [r.failures for r in failed] == [1, 2, 3]
    assert sorted(r.delivery_id for r in failed) == sorted(ids)
    (line,) = disabled
    assert (
        line.notification_uuid,
        line.repository,
        line.failures,
        line.status_code,
        line.error,
    ) == (hook_uuid, "acme/web", 3, 404, "HTTP 404")
    assert line.getMessage() == f"notification disabled: {hook_uuid} of acme/web after 3 failures"


def test_a_retry_to_come_logs_no_failure(
    runtime: Runtime, sender: FakeSender, caplog: pytest.LogCaptureFixture
) -> None:
    listeners = listen(runtime)
    notify(runtime, ["transient"])
    caplog.set_level(logging.WARNING, logger="dispatcher.failures")
    run_once(runtime, sender, emit(runtime))
    assert [r for r in caplog.records if r.name == "dispatcher.failures"] == []
    assert notices_of(runtime, listeners["notification_failing"]) == []


def test_record_returns_the_notices_deliveries(runtime: Runtime, sender: FakeSender) -> None:
    notify(runtime, ["permanent"])
    listeners = listen(runtime)
    jobs = claim(runtime.sessions, emit(runtime), runtime.settings)
    summary = record(runtime.sessions, [attempt_now(job, sender) for job in jobs], runtime.settings)
    with runtime.sessions() as session:
        queued = session.scalars(
            select(Delivery.id).where(Delivery.notification_id == listeners["notification_failing"])
        ).all()
    assert summary.notices == list(queued) and len(queued) == 1


def test_in_one_batch_each_repository_hears_of_its_own(
    runtime: Runtime, sender: FakeSender
) -> None:
    web = listen(runtime)
    notify(runtime, ["permanent"])
    other = listen(runtime, "other/repo")
    with runtime.sessions() as session:
        other_id = session.scalars(select(Repository.id).where(Repository.name == "repo")).one()
    add_notification(runtime, other_id, config={"url": "http://b/", "script": ["permanent"]})
    ids = emit(runtime) + list(
        producer.emit(
            runtime.sessions, runtime.settings, runtime.doorbell, "other/repo", "repo_push", {}
        ).delivery_ids
    )
    run_once(runtime, sender, ids)  # both failures in one batch
    assert [n["repository"] for n in notices_of(runtime, web[FAILING])] == ["acme/web"]
    assert [n["repository"] for n in notices_of(runtime, other[FAILING])] == ["other/repo"]


def test_operators_list_the_notice_targets_by_their_reserved_repository(runtime: Runtime) -> None:
    settings = runtime.settings.model_copy(update={"notice_email": "ops@example.com"})
    sync_operator_notices(runtime.sessions, settings)
    notify(runtime)  # acme/web: not listed with them
    with runtime.sessions() as session:
        listed = notifications.find_notifications(session, repository="_dispatcher/notices")
        assert sorted(n.event for n in listed) == [DISABLED, FAILING]
        assert {n.method for n in listed} == {"email"}


def test_two_batches_each_noticing_the_others_listener_do_not_deadlock(
    runtime: Runtime, sender: FakeSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each batch holds one listener's counter and writes a notice delivery for the other's:
    the counter lock must not conflict with the notice's foreign key check (PostgreSQL's row
    locks; SQLite has one writer at a time)."""
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("SQLite writes one transaction at a time")
    x = notify(runtime, ["permanent"], url="http://x.example/")
    y = notify(runtime, ["permanent"], url="http://y.example/")
    with runtime.sessions() as session:
        repository_id = session.scalars(select(Repository.id)).one()
    first, second = (
        add_notification(
            runtime,
            repository_id,
            event="notification_failing",
            config={"url": f"http://listener-{n}/", "script": ["permanent"]},
        )
        for n in (1, 2)
    )
    run_once(runtime, sender, emit(runtime))  # x and y fail: a notice pending for each listener
    emit(runtime)  # and new deliveries for x and y
    with runtime.sessions() as session:
        pending = session.scalars(select(Delivery.id).where(Delivery.status == "pending")).all()
    outcomes = {
        job.notification_id: attempt_now(job, sender)
        for job in claim(runtime.sessions, list(pending), runtime.settings)
    }
    both_locked = threading.Barrier(2)

    def steps_once_both_hold_their_counters(*args: Any) -> Any:
        both_locked.wait(5)
        return failure_steps(*args)

    monkeypatch.setattr(record_module, "failure_steps", steps_once_both_hold_their_counters)
    errors: list[BaseException] = []

    def write(batch: list[Any]) -> None:
        try:
            record(runtime.sessions, batch, runtime.settings)
        except BaseException as exc:
            errors.append(exc)

    batches = [[outcomes[x], outcomes[first]], [outcomes[y], outcomes[second]]]
    threads = [threading.Thread(target=write, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    written = [outcome.job.delivery_id for batch in batches for outcome in batch]
    with runtime.sessions() as session:
        tokens = session.scalars(select(Delivery.claim_token).where(Delivery.id.in_(written)))
        assert list(tokens) == [None] * 4


def test_a_listener_deleted_meanwhile_costs_its_notice_never_the_outcomes(
    runtime: Runtime, sender: FakeSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("SQLite writes one transaction at a time: no delete comes in between")
    notify(runtime, ["permanent"])
    notify(runtime, ["ok"], url="http://ok.example/")
    listener = listen(runtime)[FAILING]
    jobs = claim(runtime.sessions, emit(runtime), runtime.settings)
    outcomes = [attempt_now(job, sender) for job in jobs]
    listeners = notices_module._listeners

    def deleted_meanwhile(session: Any, repository_ids: Any) -> Any:
        found = listeners(session, repository_ids)
        with runtime.sessions.begin() as other:  # DELETE …/notification/{uuid}, say
            other.execute(delete(Delivery).where(Delivery.notification_id == listener))
            other.execute(delete(Notification).where(Notification.id == listener))
        return found

    monkeypatch.setattr(notices_module, "_listeners", deleted_meanwhile)
    summary = record(runtime.sessions, outcomes, runtime.settings)
    assert summary.applied == 2
    with runtime.sessions() as session:
        statuses = sorted(session.scalars(select(Delivery.status)).all())
    assert sorted(s for s in statuses if s != "pending") == ["failed", "succeeded"]


def test_a_disabled_operator_target_is_named_when_a_worker_starts(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    settings = runtime.settings.model_copy(update={"notice_webhook": "http://ops.example/n"})
    sync_operator_notices(runtime.sessions, settings)
    with runtime.sessions.begin() as session:
        target = session.scalars(select(Notification).where(Notification.event == FAILING)).one()
        target.disabled_at, target.number_of_failures = target.created_at, 3
        uuid = target.uuid
    caplog.set_level(logging.WARNING, logger="dispatcher.service.notices")
    sync_operator_notices(runtime.sessions, settings)
    (line,) = [r for r in caplog.records if r.name == "dispatcher.service.notices"]
    assert uuid in line.getMessage() and "disabled after 3 failures" in line.getMessage()
