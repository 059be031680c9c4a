"""Two process workers run two `bulk-import`s for the same account at once.

A small account (40 requests per 2 s, in the sandbox and in the workers' settings): each import
alone would pace itself at ~19.6 requests/s, so two at once without sharing would go about twice
over the limit. Under the Prefect server both take slots from the account's global concurrency
limit (created by `callerid setup-prefect`), so the sandbox must never answer 429.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from tests.conftest import PG_ADMIN_URL
from tests.deploy.conftest import POOL
from tests.deploy.stack import PrefectStack
from tests.deploy.world import RUN_TIMEOUT_S, Account, overlap_s, timing, write_csv
from tests.e2e.helpers import valid_numbers

pytestmark = pytest.mark.slow

LIMITS = {"CALLERID_RATE_LIMIT_REQUESTS": "40", "CALLERID_RATE_LIMIT_PERIOD_S": "2"}
NUMBERS_EACH = 40


@dataclass
class TwoImports:
    runs: list[dict[str, Any]]
    logs: list[str]
    handled: list[int]  # runs each worker started
    stats: dict[str, Any]
    statuses: dict[str, str]


@pytest.fixture(scope="module")
def two_imports(
    prefect_stack: PrefectStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TwoImports]:
    tmp = tmp_path_factory.mktemp("two-workers")
    admin = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    db = f"callerid_two_workers_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    acct = Account(tmp, f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{db}", "40/2", **LIMITS)
    try:
        workers = [
            prefect_stack.start_worker(f"import-worker-{i}", POOL, acct.env, limit=1)
            for i in (1, 2)
        ]  # they boot while the limit is set up; no run exists before it is
        print(acct.setup_prefect(prefect_stack))
        paths = [
            write_csv(
                tmp / f"import-{i}.csv",
                [{"phone_number": n, "alias": "", "subaccount": ""} for n in batch],
            )
            for i, batch in enumerate(
                valid_numbers(NUMBERS_EACH, prefix=p) for p in ("+1312555", "+1415555")
            )
        ]
        params = {"follow_sandbox_clock": True, "poll_interval_s": 0.2}
        ids = [
            prefect_stack.create_flow_run("bulk-verify/bulk-import", {"csv_path": p, **params})
            for p in paths
        ]
        runs = [prefect_stack.wait_flow_run(i, RUN_TIMEOUT_S, give_up=True) for i in ids]
        for run in runs:
            print(f"bulk-import {run['state_type']}: {timing(run)}")
        yield TwoImports(
            runs=runs,
            logs=[prefect_stack.logs_of(i) for i in ids],
            handled=[
                # these workers are new and see only these runs; counted without the run's name
                # (renamed after its input once it starts) and not by "submitting flow run",
                # which both workers log when they race for one run (only one then submits it)
                w.log.read_text().count("submitted to infrastructure")
                for w in workers
            ],
            stats=acct.stats(),
            statuses=acct.statuses(),
        )
    finally:
        prefect_stack.stop_workers()
        acct.close()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def test_two_workers_stay_under_the_account_limit(two_imports: TwoImports) -> None:
    assert two_imports.handled == [1, 1]  # one run each (--limit 1)
    pids = {run["infrastructure_pid"] for run in two_imports.runs}
    assert len(pids) == 2, pids  # two processes, one bucket
    assert overlap_s(*two_imports.runs) > 5, "the two imports did not run at the same time"
    stats = two_imports.stats
    assert stats["total_requests"] >= 2 * NUMBERS_EACH  # at least every initiate went out
    assert stats["rate_limited"] == 0, stats


def test_both_concurrent_imports_verify_every_number(two_imports: TwoImports) -> None:
    for run, logs in zip(two_imports.runs, two_imports.logs, strict=True):
        assert run["state_type"] == "COMPLETED", logs
    assert len(two_imports.statuses) == 2 * NUMBERS_EACH
    assert set(two_imports.statuses.values()) == {"verified"}
