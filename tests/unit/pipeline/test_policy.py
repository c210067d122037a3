"""The delivery policy, pure: retry delays, transitions, the failure counter's moves. No database,
no threads."""

from __future__ import annotations

import random

from dispatcher.pipeline.policy import retry_delay
from dispatcher.runtime import Runtime


def test_retry_delay_jitter_bounds_and_exhaustion(runtime: Runtime) -> None:
    settings = runtime.settings.model_copy(
        update={"retry_schedule": "10,0.25", "retry_jitter": 0.2}
    )
    rng = random.Random(7)
    samples = [retry_delay(1, settings, rng=rng) for _ in range(500)]
    assert all(s is not None and 8.0 <= s <= 12.0 for s in samples)
    assert max(s for s in samples if s) - min(s for s in samples if s) > 2.0  # it does vary
    assert 0.2 <= (retry_delay(2, settings, rng=rng) or 0) <= 0.3  # sub-second works
    assert retry_delay(3, settings, rng=rng) is None


def test_retry_after_is_honoured_and_capped(runtime: Runtime) -> None:
    settings = runtime.settings.model_copy(update={"retry_schedule": "1", "retry_after_max": 50})
    assert retry_delay(1, settings, retry_after=30) == 30
    assert retry_delay(1, settings, retry_after=500) == 50
    assert retry_delay(1, settings, retry_after=0.1) == 1
