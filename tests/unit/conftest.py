"""Fixtures of the pipeline and worker unit tests: a database per test or per backend, and
a scripted fake sender."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dispatcher.runtime import Runtime
from tests.unit.pipeline_helpers import FakeSender, migrated_sqlite, runtime_emptied_after


@pytest.fixture
def db_url(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrated_sqlite(tmp_path, tmp_path_factory.getbasetemp())


@pytest.fixture
def runtime(database_url: str) -> Iterator[Runtime]:
    """A runtime on each backend: claims and outcomes have PostgreSQL statements of their own."""
    yield from runtime_emptied_after(database_url)


@pytest.fixture
def sender() -> FakeSender:
    return FakeSender()
