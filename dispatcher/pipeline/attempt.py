"""One attempt at a claimed delivery: render → send → classify. No database, no threads.

:func:`attempt` renders the job's message with its method's sender, sends it once and says
what became of it as an :class:`Outcome`. The retry decision lives in the exception type: a
:class:`~dispatcher.errors.TransientDeliveryError` may be retried, a
:class:`~dispatcher.errors.PermanentDeliveryError` may not, and anything else a sender raises
is a bug of ours: logged, and the delivery fails as ``internal error`` without charging the
notification (see :mod:`dispatcher.pipeline.policy`). :func:`released` is the outcome of a job
handed back unsent. Outcomes are written by :mod:`dispatcher.pipeline.record`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from dispatcher.bounds import trim
from dispatcher.errors import DeliveryError, TransientDeliveryError
from dispatcher.events import get_event
from dispatcher.models import utcnow
from dispatcher.pipeline.claim import Job
from dispatcher.senders.base import RenderContext, Sender
from dispatcher.vocabulary import AttemptResult

log = logging.getLogger(__name__)

# What is kept of an error message.
ERROR_MAX_BYTES = 1000
INTERNAL_ERROR = "internal error"


@dataclass(frozen=True)
class Outcome:
    """What became of one claimed delivery. ``released`` is no attempt: the delivery goes back
    to pending after ``delay`` seconds (its target was saturated or its lease ran short)."""

    job: Job
    result: AttemptResult
    started_at: datetime
    latency_ms: float = 0.0
    status_code: int | None = None
    error: str | None = None
    response_excerpt: str | None = None
    retry_after: float | None = None
    delay: float = field(default=0.0)


async def attempt(
    job: Job, registry: Mapping[str, Sender], *, now: datetime | None = None
) -> Outcome:
    """Render and send ``job`` once; classify what happened. No database access."""
    started_at = now or utcnow()
    sender = registry.get(job.method)
    if sender is None:
        log.error("delivery %s: no sender for method %r", job.delivery_id, job.method)
        return Outcome(job, AttemptResult.INTERNAL, started_at, error=INTERNAL_ERROR)
    clock = time.perf_counter()
    try:
        context = RenderContext(
            event=get_event(job.event_name),
            data=job.data,
            namespace=job.namespace,
            repository=job.repository,
            notification_uuid=job.notification_uuid,
            title=job.title,
            delivery_id=job.delivery_id,
            attempt_at=started_at,
            performer=job.performer,
        )
        message = sender.render(context, job.config)
        clock = time.perf_counter()
        receipt = await sender.send(message)
    except DeliveryError as exc:  # the retry decision lives in the type
        transient = isinstance(exc, TransientDeliveryError)
        return Outcome(
            job,
            AttemptResult.TRANSIENT if transient else AttemptResult.PERMANENT,
            started_at,
            latency_ms=_elapsed_ms(clock),
            status_code=exc.status_code,
            error=trim(exc.message, ERROR_MAX_BYTES),
            response_excerpt=exc.response_excerpt,
            retry_after=exc.retry_after if isinstance(exc, TransientDeliveryError) else None,
        )
    except Exception:
        # A sender may raise only the two delivery errors; anything else is our bug. It must
        # not retry forever nor charge the notification, and it must be visible in the logs.
        log.exception("delivery %s: internal error in %s sender", job.delivery_id, job.method)
        return Outcome(
            job,
            AttemptResult.INTERNAL,
            started_at,
            latency_ms=_elapsed_ms(clock),
            error=INTERNAL_ERROR,
        )
    return Outcome(
        job,
        AttemptResult.SUCCEEDED,
        started_at,
        latency_ms=_elapsed_ms(clock),
        status_code=receipt.status_code,
        response_excerpt=receipt.response_excerpt,
    )


def released(job: Job, delay: float, *, now: datetime | None = None) -> Outcome:
    """An outcome that hands ``job`` back to pending after ``delay`` s without an attempt."""
    return Outcome(job, AttemptResult.RELEASED, now or utcnow(), delay=delay)


def _elapsed_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)


__all__ = ["INTERNAL_ERROR", "Outcome", "attempt", "released"]
