"""``dispatcher.emit``, the producer's entry point in Python, as a producer's process uses it:
settings from the environment, the database migrated on first use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PRODUCER = """
import json, dispatcher
first = dispatcher.emit("acme/web", "repo_push", {"updated_tags": ["v1"]}, idempotency_key="k")
again = dispatcher.emit("acme/web", "repo_push", {"updated_tags": ["v1"]}, idempotency_key="k")
other = dispatcher.emit("acme/web", "repo_push", {"updated_tags": ["v1"]})
print(json.dumps([[r.event_id, r.replayed] for r in (first, again, other)]))
"""


def test_emit_from_python_with_and_without_an_idempotency_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCHER_")}
    env["DISPATCHER_DATABASE_URL"] = f"sqlite:///{tmp_path / 'producer.db'}"
    result = subprocess.run(
        [sys.executable, "-c", PRODUCER],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (first, first_replayed), (again, again_replayed), (other, other_replayed) = json.loads(
        result.stdout
    )
    assert (first_replayed, again_replayed, other_replayed) == (False, True, False)
    assert again == first and other != first
