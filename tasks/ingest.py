"""Thin Prefect task over `callerid.ingest.ingest_csv`: read and check the CSV or spreadsheet, log
the summary.

`retries=0`: reading a file again gives the same answer, and a bad file must fail loudly at once.
`NO_CACHE`: the input is a path, and the file behind it may change between runs.
`persist_result=False`: the result can hold 100,000 rows; the flow uses it in memory.
"""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from callerid.ingest import IngestResult, ingest_csv, summary_lines


@task(name="ingest-csv", cache_policy=NO_CACHE, retries=0, persist_result=False)
def ingest_task(
    csv_path: str,
    *,
    default_region: str = "US",
    encoding: str | None = None,
    default_channel: str = "auto",
    default_subaccount: str | None = None,
    workers: int = 1,
    sheet: str | None = None,
    default_owner: str | None = None,
) -> IngestResult:
    """Every row accepted or rejected with a reason; `IngestInputError` for an unusable file."""
    result = ingest_csv(
        csv_path,
        default_region=default_region,
        encoding=encoding,
        default_channel=default_channel,
        default_subaccount=default_subaccount,
        workers=workers,
        sheet=sheet,
        default_owner=default_owner,
    )
    logger = get_run_logger()
    for line in summary_lines(result, max_warnings=5):
        logger.info(line)
    return result
