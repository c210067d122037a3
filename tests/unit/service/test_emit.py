"""Fan-out: filters, disabled notifications, bulk deliveries, image expiry, ringing after commit."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select

from dispatcher.errors import InvalidRequestError, UnknownEventError
from dispatcher.models import Delivery, Event, ExpiryAnnouncement, Notification, utcnow
from dispatcher.runtime import Runtime
from dispatcher.service import emit as producer
from dispatcher.service.notifications import queue_test
from tests.unit.pipeline_helpers import (
    add_notification,
    add_repository,
    runtime_emptied_after,
)


@pytest.fixture
def runtime(database_url: str) -> Iterator[Runtime]:
    """A runtime on each backend: fan-out has a PostgreSQL statement of its own."""
    yield from runtime_emptied_after(database_url)


def emit(runtime: Runtime, event: str, data: dict[str, object], repo: str = "acme/web"):  # type: ignore[no-untyped-def]
    return producer.emit(runtime.sessions, runtime.settings, runtime.doorbell, repo, event, data)


def deliveries(runtime: Runtime) -> Sequence[Delivery]:
    with runtime.sessions() as session:
        return session.scalars(select(Delivery)).all()


def test_emit_registers_repository_and_stores_quay_event_data(runtime: Runtime) -> None:
    result = emit(runtime, "repo_push", {"updated_tags": ["v1"]}, repo="acme/new")
    assert result.deliveries == 0
    with runtime.sessions() as session:
        event = session.get_one(Event, result.event_id)
        assert event.data == {
            "repository": "acme/new",
            "namespace": "acme",
            "name": "new",
            "docker_url": "quay.example.com/acme/new",
            "homepage": "https://quay.example.com/repository/acme/new",
            "updated_tags": ["v1"],
        }


def test_build_event_homepage_has_build_subpage(runtime: Runtime) -> None:
    result = emit(runtime, "build_success", {"build_id": "b-1", "trigger_metadata": {}})
    with runtime.sessions() as session:
        data = session.get_one(Event, result.event_id).data
    assert data["homepage"] == "https://quay.example.com/repository/acme/web/build/b-1"


def test_fan_out_one_delivery_per_enabled_matching_notification(runtime: Runtime) -> None:
    repo = add_repository(runtime)
    wanted = add_notification(runtime, repo)
    add_notification(runtime, repo, disabled=True)
    add_notification(runtime, repo, event="build_success")
    other = add_repository(runtime, "acme/other")
    add_notification(runtime, other)

    result = emit(runtime, "repo_push", {"updated_tags": ["v1"]})

    rows = deliveries(runtime)
    assert [d.notification_id for d in rows] == [wanted]
    assert rows[0].kind == "event" and rows[0].status == "pending"
    assert rows[0].event_id == result.event_id
    assert runtime.doorbell.rung == list(result.delivery_ids)  # type: ignore[attr-defined]


def test_filters_apply_at_fan_out(runtime: Runtime) -> None:
    repo = add_repository(runtime)
    main = add_notification(
        runtime, repo, event="build_success", event_config={"ref-regex": "refs/heads/main"}
    )
    add_notification(
        runtime, repo, event="build_success", event_config={"ref-regex": "refs/tags/.*"}
    )
    result = emit(
        runtime, "build_success", {"build_id": "b", "trigger_metadata": {"ref": "refs/heads/main"}}
    )
    assert result.deliveries == 1
    assert [d.notification_id for d in deliveries(runtime)] == [main]


def test_vulnerability_level_filter(runtime: Runtime) -> None:
    repo = add_repository(runtime)
    add_notification(runtime, repo, event="vulnerability_found", event_config={"level": 1})
    low = {"tags": ["x"], "vulnerability": {"priority": "Low"}}
    high = {"tags": ["x"], "vulnerability": {"priority": "High"}}
    assert emit(runtime, "vulnerability_found", low).deliveries == 0
    assert emit(runtime, "vulnerability_found", high).deliveries == 1


def test_ring_happens_after_commit(runtime: Runtime) -> None:
    repo = add_repository(runtime)
    add_notification(runtime, repo)
    seen: list[int] = []

    class CheckingDoorbell:
        def ring(self, ids: Sequence[str]) -> None:
            with runtime.sessions() as session:  # a new connection sees only committed rows
                seen.append(
                    session.scalar(select(func.count()).where(Delivery.id.in_(list(ids)))) or 0
                )

    producer.emit(
        runtime.sessions, runtime.settings, CheckingDoorbell(), "acme/web", "repo_push", {}
    )
    assert seen == [1]


def test_nothing_matching_rings_nothing(runtime: Runtime) -> None:
    emit(runtime, "repo_push", {})
    assert runtime.doorbell.rung == []  # type: ignore[attr-defined]


def test_bad_input_stores_nothing(runtime: Runtime) -> None:
    with pytest.raises(UnknownEventError):
        emit(runtime, "nope", {})
    with pytest.raises(InvalidRequestError):
        emit(runtime, "repo_push", {}, repo="Not A Repo")
    with pytest.raises(InvalidRequestError):
        producer.emit(
            runtime.sessions,
            runtime.settings,
            runtime.doorbell,
            "a/b",
            "repo_push",
            [1],  # type: ignore[arg-type]
        )
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 0


def test_bulk_fan_out_to_many_notifications(runtime: Runtime) -> None:
    repo = add_repository(runtime)
    now = utcnow()
    with runtime.sessions.begin() as session:
        session.execute(
            insert(Notification),
            [
                {
                    "uuid": f"00000000-0000-0000-0000-{n:012d}",
                    "repository_id": repo,
                    "event": "repo_push",
                    "method": "webhook",
                    "config": {"url": f"http://hook.example/{n}"},
                    "event_config": {},
                    "number_of_failures": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                for n in range(2000)
            ],
        )
    started = time.perf_counter()
    result = emit(runtime, "repo_push", {"updated_tags": ["v1"]})
    elapsed = time.perf_counter() - started
    assert result.deliveries == 2000
    assert len(set(result.delivery_ids)) == 2000
    assert len(deliveries(runtime)) == 2000
    assert elapsed < 5  # the figure that matters is in bench/; this only catches a row-by-row loop


def test_queue_test_creates_a_test_delivery_even_when_disabled(runtime: Runtime) -> None:
    repo = add_repository(runtime)
    notification_id = add_notification(runtime, repo, disabled=True)
    with runtime.sessions() as session:
        notification = session.get_one(Notification, notification_id)
        delivery = queue_test(session, notification, runtime.settings, runtime.doorbell)
    assert delivery.kind == "test" and delivery.status == "pending"
    assert runtime.doorbell.rung == [delivery.id]  # type: ignore[attr-defined]


def test_queue_test_ignores_a_ref_regex_the_sample_does_not_match(runtime: Runtime) -> None:
    """Quay's test runs the filter and sends nothing here (the sample ref is
    refs/heads/somebranch); ours sends the sample, so a test always shows the target works."""
    repo = add_repository(runtime)
    notification_id = add_notification(
        runtime, repo, event="build_success", event_config={"ref-regex": "refs/tags/.*"}
    )
    with runtime.sessions() as session:
        notification = session.get_one(Notification, notification_id)
        delivery = queue_test(session, notification, runtime.settings, runtime.doorbell)
        data = session.get_one(Event, delivery.event_id).data
    assert delivery.kind == "test" and delivery.status == "pending"
    assert data["trigger_metadata"]["ref"] == "refs/heads/somebranch"


# -- repo_image_expiry ------------------------------------------------------------------------


def test_image_expiry_announces_tags_within_days_once(runtime: Runtime) -> None:
    repo = add_repository(runtime)
    # "7" as Quay's old UI stores it: a numeric string counts like the number
    week = add_notification(runtime, repo, event="repo_image_expiry", event_config={"days": "7"})
    day = add_notification(runtime, repo, event="repo_image_expiry", event_config={"days": 1})
    now = utcnow()
    tags = {
        "tags": [
            {"name": "soon", "expires_at": (now + timedelta(hours=12)).isoformat()},
            {"name": "later", "expires_at": (now + timedelta(days=3)).timestamp()},
            {"name": "far", "expires_at": (now + timedelta(days=30)).isoformat()},
            {"name": "gone", "expires_at": (now - timedelta(days=1)).isoformat()},
        ]
    }
    result = emit(runtime, "repo_image_expiry", tags)
    assert result.deliveries == 2
    with runtime.sessions() as session:
        by_notification = {
            d.notification_id: session.get_one(Event, d.event_id).data
            for d in session.scalars(select(Delivery))
        }
        uuids = {n.id: n.uuid for n in session.scalars(select(Notification))}
    assert by_notification[week]["tags"] == ["soon", "later"]
    assert by_notification[week]["expiring_in"] == "7 days"
    assert by_notification[week]["notification_uuid"] == uuids[week]
    assert by_notification[week]["repository"] == "acme/web"
    assert by_notification[day]["tags"] == ["soon"]
    assert by_notification[day]["expiring_in"] == "1 days"

    # the same report again announces nothing; a new expiry time of a tag is announced
    assert emit(runtime, "repo_image_expiry", tags).deliveries == 0
    moved = {"tags": [{"name": "soon", "expires_at": (now + timedelta(hours=13)).isoformat()}]}
    assert emit(runtime, "repo_image_expiry", moved).deliveries == 2


def test_image_expiry_rejects_bad_times(runtime: Runtime) -> None:
    with pytest.raises(InvalidRequestError, match="expires_at"):
        emit(runtime, "repo_image_expiry", {"tags": [{"name": "x", "expires_at": "soon"}]})


def expiring(*names: str) -> list[dict[str, object]]:
    at = (utcnow() + timedelta(hours=12)).isoformat()
    return [{"name": name, "expires_at": at} for name in names]


def test_image_expiry_announces_each_tag_once_across_emits(runtime: Runtime) -> None:
    repo = add_repository(runtime)
    add_notification(runtime, repo, event="repo_image_expiry", event_config={"days": 7})
    tags = expiring("v1", "v2")
    assert emit(runtime, "repo_image_expiry", {"tags": tags}).deliveries == 1
    # one tag more in the next report: only the new one goes out
    again = emit(runtime, "repo_image_expiry", {"tags": tags + expiring("v3")})
    assert again.deliveries == 1
    with runtime.sessions() as session:
        (delivery,) = session.scalars(select(Delivery).where(Delivery.id.in_(again.delivery_ids)))
        assert session.get_one(Event, delivery.event_id).data["tags"] == ["v3"]
    assert emit(runtime, "repo_image_expiry", {"tags": tags}).deliveries == 0


def test_concurrent_image_expiry_emits_announce_once(runtime: Runtime) -> None:
    repo = add_repository(runtime)
    for days in (1, 7):
        add_notification(runtime, repo, event="repo_image_expiry", event_config={"days": days})
    report = {"tags": expiring("v1", "v2", "v3")}
    start = threading.Barrier(2, timeout=10)

    def emit_at_once() -> int:
        start.wait()
        return int(emit(runtime, "repo_image_expiry", report).deliveries)

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(emit_at_once) for _ in range(2)]
        counts = sorted(future.result(timeout=30) for future in futures)

    # one emit announces every tag to both notifications; the other finds them taken
    assert counts == [0, 2]
    with runtime.sessions() as session:
        announced = session.scalar(select(func.count()).select_from(ExpiryAnnouncement))
        tags = [
            session.get_one(Event, delivery.event_id).data["tags"]
            for delivery in session.scalars(select(Delivery))
        ]
    assert announced == 6
    assert sorted(tags) == [["v1", "v2", "v3"], ["v1", "v2", "v3"]]


# -- idempotent producers ----------------------------------------------------------------------


def emit_keyed(runtime: Runtime, key: str, data: dict[str, object] | None = None):  # type: ignore[no-untyped-def]
    return producer.emit(
        runtime.sessions,
        runtime.settings,
        runtime.doorbell,
        "acme/web",
        "repo_push",
        data if data is not None else {"updated_tags": ["v1"]},
        idempotency_key=key,
    )


def stored(runtime: Runtime) -> tuple[int, int]:
    with runtime.sessions() as session:
        events = session.scalar(select(func.count()).select_from(Event)) or 0
        return events, session.scalar(select(func.count()).select_from(Delivery)) or 0


def test_a_repeated_key_answers_with_the_first_event_and_stores_nothing(runtime: Runtime) -> None:
    repository_id = add_repository(runtime)
    add_notification(runtime, repository_id)
    add_notification(runtime, repository_id)
    first = emit_keyed(runtime, "push-4711")
    assert not first.replayed and first.deliveries == 2
    rings = runtime.doorbell.rings  # type: ignore[attr-defined]

    again = emit_keyed(runtime, "push-4711", {"updated_tags": ["something else"]})
    assert again.replayed
    assert (again.event_id, again.delivery_ids) == (first.event_id, first.delivery_ids)
    assert stored(runtime) == (1, 2)
    assert runtime.doorbell.rings == rings  # type: ignore[attr-defined]  # nothing new to ring

    other = emit_keyed(runtime, "push-4712")  # another key is another report
    assert not other.replayed and other.event_id != first.event_id
    assert stored(runtime) == (2, 4)
    unkeyed = emit(runtime, "repo_push", {"updated_tags": ["v1"]})
    assert unkeyed.event_id not in (first.event_id, other.event_id)


def test_keys_belong_to_one_repository(runtime: Runtime) -> None:
    first = emit_keyed(runtime, "k")
    elsewhere = producer.emit(
        runtime.sessions,
        runtime.settings,
        runtime.doorbell,
        "acme/other",
        "repo_push",
        {},
        idempotency_key="k",
    )
    assert not elsewhere.replayed and elsewhere.event_id != first.event_id


def test_a_key_older_than_the_window_is_a_new_report(runtime: Runtime) -> None:
    from dispatcher.models import IdempotencyKey

    first = emit_keyed(runtime, "k")
    window = runtime.settings.idempotency_seconds
    with runtime.sessions.begin() as session:
        row = session.scalars(select(IdempotencyKey)).one()
        row.created_at = utcnow() - timedelta(seconds=window + 1)
    later = emit_keyed(runtime, "k")
    assert not later.replayed and later.event_id != first.event_id
    assert emit_keyed(runtime, "k").event_id == later.event_id  # remembered anew


@pytest.mark.parametrize("key", ["", " ", "with space", "x" * 256, "é", "tab\there", "nul\x00"])
def test_a_bad_key_is_refused_and_nothing_is_stored(runtime: Runtime, key: str) -> None:
    with pytest.raises(InvalidRequestError, match="idempotency key"):
        emit_keyed(runtime, key)
    assert stored(runtime) == (0, 0)


def test_two_emits_racing_with_one_key_store_one_event(runtime: Runtime) -> None:
    """The second of two emits with one key, waiting on the first's uncommitted row, answers
    with what the first stored once it commits, and keeps nothing of its own."""
    from dispatcher.models import IdempotencyKey

    repository_id = add_repository(runtime)
    add_notification(runtime, repository_id)
    first = runtime.sessions()
    first.add(
        IdempotencyKey(
            repository_id=repository_id,
            key="k",
            event_id="first-event",
            delivery_ids=["first-delivery"],
            created_at=utcnow(),
        )
    )
    first.flush()  # written, not committed: the racing emit waits on it
    with ThreadPoolExecutor(1) as pool:
        racing = pool.submit(emit_keyed, runtime, "k")
        time.sleep(0.5)  # let it reach the wait
        assert not racing.done()
        first.commit()
        first.close()
        result = racing.result(timeout=30)
    assert result.replayed
    assert (result.event_id, result.delivery_ids) == ("first-event", ("first-delivery",))
    assert stored(runtime) == (0, 0)  # its own event and delivery went with its rollback
