"""The sweeper on a timer: it prunes the delivery log on its own."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from sqlalchemy import func, select

from dispatcher.models import Delivery, Event, utcnow
from dispatcher.runtime import Runtime, create_runtime
from dispatcher.worker.sweeper import run_sweeper
from tests.conftest import empty_tables, settings_for
from tests.deliverylog import add_delivery, add_notification


def count(runtime: Runtime, model: type[object]) -> int:
    with runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_the_sweeper_prunes_on_its_own(database_url: str) -> None:
    runtime = create_runtime(
        settings_for(database_url, delivery_retention="1d", sweep_interval=0.05)
    )
    with runtime.sessions.begin() as session:
        add_delivery(session, add_notification(session), created_at=utcnow() - timedelta(days=2))
    stop = threading.Event()
    thread = threading.Thread(target=run_sweeper, args=(runtime, stop), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while count(runtime, Delivery) + count(runtime, Event) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert count(runtime, Delivery) == 0
        assert count(runtime, Event) == 0
    finally:
        stop.set()
        thread.join(timeout=10)
        empty_tables(runtime)
        runtime.close()
