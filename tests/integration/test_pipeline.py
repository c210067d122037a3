"""End to end through real parts: emit → Redis → ``dispatcher worker`` → HTTP/SMTP receivers,
with ``dispatcher scheduler`` sweeping; on SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
import standardwebhooks
from sqlalchemy import select

from dispatcher.models import Delivery, Notification
from dispatcher.service.notifications import reset_failures
from tests.integration.conftest import Pipeline, Receiver, wait_until

pytestmark = pytest.mark.integration

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def failures(pipeline: Pipeline, notification_id: int) -> tuple[int, bool]:
    with pipeline.runtime.sessions() as session:
        row = session.get_one(Notification, notification_id)
        return row.number_of_failures, row.disabled_at is not None


def test_webhook_slack_and_email_arrive(
    make_pipeline: Callable[..., Pipeline],
    receiver: Receiver,
    smtp_server: tuple[int, Any],
) -> None:
    smtp_port, mailbox = smtp_server
    pipeline = make_pipeline(smtp_host="127.0.0.1", smtp_port=str(smtp_port))
    pipeline.notification("webhook", {"url": receiver.url("/hook"), "secret": SECRET})
    pipeline.notification("slack", {"url": receiver.url("/slack")})
    pipeline.notification("email", {"email": "admin@example.com"})
    pipeline.start("worker")

    result = pipeline.emit()
    assert result.deliveries == 3
    requests = {r.path: r for r in receiver.wait_for(2)}
    wait_until(lambda: len(mailbox.messages) == 1)

    hook = requests["/hook"]
    assert hook.json() == {
        "repository": "acme/web",
        "namespace": "acme",
        "name": "web",
        "docker_url": "quay.example.com/acme/web",
        "homepage": "https://quay.example.com/repository/acme/web",
        "updated_tags": ["v1"],
    }
    assert hook.headers["Content-Type"] == "application/json"
    verified = standardwebhooks.Webhook(SECRET).verify(
        hook.body, {k.lower(): v for k, v in hook.headers.items()}
    )
    assert verified == hook.json()
    assert hook.headers["webhook-id"] in result.delivery_ids

    slack = requests["/slack"].json()
    assert slack["text"] == "Repository acme/web updated"
    (attachment,) = slack["attachments"]
    assert set(attachment) >= {"fallback", "text", "color", "mrkdwn_in"}
    assert attachment["mrkdwn_in"] == ["text"]

    (mail,) = mailbox.messages
    assert mail["To"] == "admin@example.com"
    assert mail.is_multipart()
    assert {part.get_content_type() for part in mail.walk()} >= {"text/plain", "text/html"}

    with pipeline.runtime.sessions() as session:
        statuses = session.scalars(select(Delivery.status)).all()
    wait_until(lambda: pipeline.statuses() == ["succeeded"] * 3)
    assert len(statuses) == 3


def test_failing_receiver_disables_then_reset_re_enables(
    make_pipeline: Callable[..., Pipeline], receiver: Receiver
) -> None:
    pipeline = make_pipeline()
    notification_id = pipeline.notification("webhook", {"url": receiver.url()})
    pipeline.start("worker")
    pipeline.start("scheduler")
    receiver.status = 500

    for expected in (1, 2, 3):
        pipeline.emit()
        # three attempts each (schedule 0.2,0.2), the retries rung by the sweep
        receiver.wait_for(3 * expected)
        wait_until(lambda n=expected: failures(pipeline, notification_id)[0] == n)  # type: ignore[misc]
    assert failures(pipeline, notification_id) == (3, True)

    assert pipeline.emit().deliveries == 0  # disabled: later events are not delivered
    time.sleep(0.5)
    assert len(receiver.requests) == 9

    with pipeline.runtime.sessions() as session:
        reset_failures(session, session.get_one(Notification, notification_id))
        session.commit()
    receiver.status = 200
    assert pipeline.emit().deliveries == 1
    receiver.wait_for(10)
    wait_until(lambda: failures(pipeline, notification_id) == (0, False))


def test_killed_worker_loses_nothing(
    make_pipeline: Callable[..., Pipeline], receiver: Receiver
) -> None:
    pipeline = make_pipeline(
        lease_seconds="2",
        worker_send_concurrency="4",
        worker_per_host_concurrency="4",
        http_timeout="0.5",
    )
    count = 40
    for n in range(count):
        pipeline.notification("webhook", {"url": receiver.url(f"/{n}")})
    receiver.delay = 0.1
    worker = pipeline.start("worker")
    pipeline.start("scheduler")

    result = pipeline.emit()
    assert result.deliveries == count
    receiver.wait_for(4)
    os.killpg(worker.pid, signal.SIGKILL)  # mid-batch: claimed, some sent, most not
    worker.wait(5)
    sent_before = len(receiver.requests)
    assert sent_before < count

    receiver.delay = 0.0
    pipeline.start("worker")
    wait_until(lambda: len({r.path for r in receiver.requests}) == count, timeout=30)
    wait_until(lambda: pipeline.statuses() == ["succeeded"] * count, timeout=30)
