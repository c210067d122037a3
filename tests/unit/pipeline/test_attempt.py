"""One attempt, pure: render → send → classify, with stub senders. No database, no threads."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any, ClassVar

import pytest

from dispatcher.errors import PermanentDeliveryError, TransientDeliveryError
from dispatcher.pipeline.attempt import ERROR_MAX_BYTES, INTERNAL_ERROR, attempt
from dispatcher.senders.base import Receipt, RenderContext
from dispatcher.vocabulary import AttemptResult
from tests.unit.pipeline_helpers import make_job

JOB = make_job()


class Stub:
    """A sender whose send raises ``failure`` (or answers 200)."""

    method: ClassVar[str] = "webhook"

    def __init__(self, failure: BaseException | None = None) -> None:
        self.failure = failure
        self.rendered: list[RenderContext] = []

    def target_key(self, config: dict[str, Any]) -> str:
        return "t"

    def describe(self, config: dict[str, Any]) -> str:
        return "t"

    def render(self, context: RenderContext, config: dict[str, Any]) -> str:
        self.rendered.append(context)
        return "message"

    async def send(self, message: Any) -> Receipt:
        if self.failure is not None:
            raise self.failure
        return Receipt(status_code=200, response_excerpt="ok")


def run(sender: Stub | None) -> Any:
    registry = {} if sender is None else {"webhook": sender}
    return asyncio.run(attempt(JOB, registry))  # type: ignore[arg-type]


def test_a_success_carries_the_receipt_and_the_context_is_the_jobs() -> None:
    sender = Stub()
    outcome = run(sender)
    assert (outcome.result, outcome.status_code, outcome.response_excerpt) == (
        AttemptResult.SUCCEEDED,
        200,
        "ok",
    )
    (context,) = sender.rendered
    assert (context.delivery_id, context.namespace, context.repository) == ("d", "acme", "web")
    assert context.event.name == "repo_push"


@pytest.mark.parametrize(
    ("failure", "result"),
    [
        (TransientDeliveryError("busy", status_code=503, retry_after=9), AttemptResult.TRANSIENT),
        (PermanentDeliveryError("gone", status_code=410), AttemptResult.PERMANENT),
    ],
)
def test_the_retry_decision_lives_in_the_exception_type(
    failure: BaseException, result: AttemptResult
) -> None:
    outcome = run(Stub(failure))
    assert outcome.result == result
    assert outcome.status_code == failure.status_code  # type: ignore[attr-defined]
    assert outcome.retry_after == (9 if result == AttemptResult.TRANSIENT else None)


def test_a_long_error_is_cut_to_its_bytes() -> None:
    outcome = run(Stub(PermanentDeliveryError("é" * 5000)))
    assert len(outcome.error.encode()) <= ERROR_MAX_BYTES
    assert outcome.error.endswith("…")


def test_anything_else_is_our_bug_logged_and_internal(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        outcome = run(Stub(RuntimeError("a bug")))
    assert (outcome.result, outcome.error) == (AttemptResult.INTERNAL, INTERNAL_ERROR)
    assert any("internal error in webhook sender" in r.getMessage() for r in caplog.records)


def test_a_method_without_a_sender_is_internal() -> None:
    outcome = asyncio.run(attempt(replace(JOB, method="pager"), {}))
    assert (outcome.result, outcome.error) == (AttemptResult.INTERNAL, INTERNAL_ERROR)
