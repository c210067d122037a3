"""Failure notices end to end: a real worker, Redis, the database, aiosmtpd and loopback
receivers. A hook whose receiver answers 500 fails three times and is disabled; the
repository's notice subscriptions (webhook and e-mail) and the operator's targets hear of each
step exactly once, and a notice target that fails itself starts no loop."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from dispatcher.models import Delivery, Event
from tests.integration.conftest import Pipeline, Receiver, receiving, wait_until

FAILING, DISABLED = "notification_failing", "notification_disabled"


def test_each_step_is_told_once_to_the_repository_and_the_operator(
    make_pipeline: Callable[..., Pipeline],
    receiver: Receiver,
    smtp_server: tuple[int, Any],
) -> None:
    smtp_port, mailbox = smtp_server
    with receiving() as broken:
        broken.status = 500
        pipeline = make_pipeline(
            smtp_host="127.0.0.1",
            smtp_port=str(smtp_port),
            max_failures="3",
            notice_webhook=receiver.url("/operator"),
            notice_email="ops@example.com",
        )
        pipeline.notification("webhook", {"url": broken.url("/hook")}, title="Deploy hook")
        for event in (FAILING, DISABLED):
            pipeline.notification("webhook", {"url": receiver.url(f"/{event}")}, event=event)
            pipeline.notification("email", {"email": "team@example.com"}, event=event)
        # a notice target that fails too: its failures must not be reported
        pipeline.notification("webhook", {"url": broken.url("/broken")}, event=FAILING)
        pipeline.start("worker")

        for _ in range(3):
            pipeline.emit()
        wait_until(lambda: "pending" not in pipeline.statuses(), timeout=40)
        time.sleep(1.0)  # anything a notice would still queue is queued and rung by now
        wait_until(lambda: "pending" not in pipeline.statuses(), timeout=20)

    with pipeline.runtime.sessions() as session:
        stored = Counter(session.scalars(select(Event.name)).all())
        hook_statuses = session.scalars(
            select(Delivery.status)
            .join(Event, Event.id == Delivery.event_id)
            .where(Event.name == "repo_push")
        ).all()
    assert sorted(hook_statuses) == ["failed"] * 3
    # about the hook: one notice per step and one disable; none about the broken notice target
    assert stored == {"repo_push": 3, FAILING: 3, DISABLED: 1}

    def steps(path: str) -> list[int]:
        return sorted(r.json()["number_of_failures"] for r in receiver.requests if r.path == path)

    assert steps(f"/{FAILING}") == [1, 2, 3]  # each step once
    assert steps(f"/{DISABLED}") == [3]
    (disabled,) = [r.json() for r in receiver.requests if r.path == f"/{DISABLED}"]
    assert disabled["notification"]["title"] == "Deploy hook"
    assert (disabled["status_code"], disabled["max_failures"]) == (500, 3)
    assert disabled["reenable"]["cli"].startswith("dispatcher notifications reset ")
    operator = [r.json() for r in receiver.requests if r.path == "/operator"]
    assert sorted(n["number_of_failures"] for n in operator) == [1, 2, 3, 3]
    assert all(n["repository"] == "acme/web" for n in operator)

    mails = [(m["To"], " ".join(m["Subject"].split())) for m in mailbox.messages]  # unfolded
    for address in ("team@example.com", "ops@example.com"):
        assert sorted(subject for to, subject in mails if to == address) == [
            "Notification Deploy hook of repository acme/web disabled after 3 failures",
            *(
                f"Notification Deploy hook of repository acme/web failed ({n} of 3 failures)"
                for n in (1, 2, 3)
            ),
        ]
