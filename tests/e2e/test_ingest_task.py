"""`ingest_task` under the session's Prefect test server: one task run, the result in memory,
and an unusable file failing the run with the ingest's own clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect import flow
from prefect.cache_policies import NO_CACHE

from callerid.ingest import IngestInputError, IngestResult
from tasks.ingest import ingest_task

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample.csv"


@flow(name="ingest-only")
def ingest_only(csv_path: str, default_region: str = "US") -> IngestResult:
    return ingest_task(csv_path, default_region=default_region)


def test_the_task_returns_the_ingest_result(prefect_api: str) -> None:
    result = ingest_only(str(SAMPLE))
    assert isinstance(result, IngestResult)
    assert (result.data_rows, len(result.accepted), len(result.rejected)) == (56, 45, 11)


def test_an_unusable_file_fails_the_run_with_the_ingest_error(
    prefect_api: str, tmp_path: Path
) -> None:
    path = tmp_path / "people.csv"
    path.write_text("name,email\nAda,ada@example.com\n", encoding="utf-8")
    with pytest.raises(IngestInputError, match="columns found: 'name', 'email'"):
        ingest_only(str(path))


def test_the_task_is_not_retried_cached_or_persisted() -> None:
    assert ingest_task.retries == 0
    assert ingest_task.persist_result is False
    assert ingest_task.cache_policy is NO_CACHE
