"""The reconcile service against the sandbox over HTTP: listing, dry run, apply, prune, scope."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from callerid.plivo import PlivoClient, RateLimiter
from callerid.reconcile.account import list_account
from callerid.reconcile.models import Category, Known, Outcome, Scope
from callerid.reconcile.service import ReconcileOptions, reconcile_account
from callerid.sandbox.server import SandboxServer
from callerid.sandbox.state import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, DEFAULT_SUBACCOUNTS

SA1, SA2 = "SASANDBOXSUBACCT0001", "SASANDBOXSUBACCT0002"


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(seed=7, subaccounts=DEFAULT_SUBACCOUNTS) as server:
        yield server


@pytest.fixture
async def client(sandbox: SandboxServer) -> AsyncIterator[PlivoClient]:
    async with PlivoClient(
        DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, sandbox.url, limiter=RateLimiter(300, 5.0)
    ) as c:
        yield c


def _seed(sandbox: SandboxServer) -> list[Known]:
    b = sandbox.backend
    b.seed_verified("+14155550001", alias="ok")
    b.seed_verified("+14155550002", alias="renamed-by-hand")
    b.seed_verified("+14155550003", alias="moved", subaccount=SA2)
    b.seed_verified("+14155550009", alias="stranger")
    return [
        Known("+14155550001", "verified", alias="ok"),
        Known("+14155550002", "verified", alias="original"),
        Known("+14155550003", "verified", alias="moved", subaccount=SA1),
        Known("+14155550004", "verified", alias="deleted-by-hand"),
        Known("+14155550005", "initiated"),
    ]


async def test_list_account_reads_every_page_concurrently(
    sandbox: SandboxServer, client: PlivoClient
) -> None:
    numbers = [f"+1415555{n:04d}" for n in range(1000, 1047)]  # 3 pages: 20 + 20 + 7
    for n in numbers:
        sandbox.backend.seed_verified(n)
    listed = await list_account(client, Scope(DEFAULT_AUTH_ID))
    assert [item.phone_number for item in listed] == sorted(numbers)
    assert sandbox.backend.stats()["total_requests"] == 3


async def test_dry_run_changes_nothing_and_plans_exactly_the_changes(
    sandbox: SandboxServer, client: PlivoClient, tmp_path: Path
) -> None:
    known = _seed(sandbox)
    options = ReconcileOptions(prune=True, requeue_lost=True)
    report = await reconcile_account(
        client, options, known=known, desired=None, output_dir=tmp_path
    )
    assert report.counts["verified"] == 1 and report.counts["alias_drift"] == 1
    assert report.numbers(Category.SUBACCOUNT_DRIFT) == ["+14155550003"]
    assert report.numbers(Category.EXTRA) == ["+14155550009"]
    assert report.numbers(Category.LOST) == ["+14155550004"]
    assert report.numbers(Category.PENDING) == ["+14155550005"]
    assert {r.outcome for r in report.results} == {Outcome.PLANNED}
    assert sorted(r.action.describe() for r in report.results) == [
        "delete +14155550009 (listed, unknown)",
        "requeue +14155550004 (verified in the ledger, no longer listed)",
        "update +14155550002: alias -> 'original'",
        f"update +14155550003: subaccount -> {SA1}",
    ]
    assert sandbox.backend.stats()["total_requests"] == 1  # one page listed, nothing written
    assert report.csv_path is not None
    with report.csv_path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["phone_number"]: r["category"] for r in rows}["+14155550009"] == "extra"
    assert [r["outcome"] for r in rows if r["phone_number"] == "+14155550009"] == ["planned"]


async def test_apply_fixes_drift_and_prune_deletes_only_the_extra(
    sandbox: SandboxServer, client: PlivoClient, tmp_path: Path
) -> None:
    known = _seed(sandbox)
    without_prune = ReconcileOptions(apply=True)
    report = await reconcile_account(
        client, without_prune, known=known, desired=None, output_dir=tmp_path
    )
    assert {r.outcome for r in report.results} == {Outcome.DONE}
    assert (await client.get("+14155550002")).alias == "original"
    assert (await client.get("+14155550003")).subaccount == SA1
    assert (await client.get("+14155550009")).alias == "stranger"  # extra kept without prune

    pruned = await reconcile_account(
        client,
        ReconcileOptions(apply=True, prune=True),
        known=known,
        desired=None,
        output_dir=tmp_path,
    )
    assert [r.action.phone_number for r in pruned.results] == ["+14155550009"]
    listed = await list_account(client, Scope(DEFAULT_AUTH_ID))
    assert "+14155550009" not in {item.phone_number for item in listed}
    assert pruned.counts["alias_drift"] == 0 and pruned.counts["subaccount_drift"] == 0


async def test_scoped_run_finds_a_number_that_moved_out_of_its_subaccount(
    sandbox: SandboxServer, client: PlivoClient, tmp_path: Path
) -> None:
    sandbox.backend.seed_verified("+14155550003", alias="moved", subaccount=SA2)
    known = [Known("+14155550003", "verified", alias="moved", subaccount=SA1)]
    report = await reconcile_account(
        client, ReconcileOptions(subaccount=SA1), known=known, desired=None, output_dir=tmp_path
    )
    assert report.numbers(Category.LOST) == []
    assert report.numbers(Category.SUBACCOUNT_DRIFT) == ["+14155550003"]


async def test_desired_csv_sets_the_target_and_a_broken_one_refuses_to_prune(
    sandbox: SandboxServer, client: PlivoClient, tmp_path: Path
) -> None:
    from callerid.reconcile.desired import DesiredStateError, load_desired

    sandbox.backend.seed_verified("+14155550001", alias="old")
    good = tmp_path / "desired.csv"
    good.write_text("phone_number,alias\n(415) 555-0001,front desk\n+14155550002,new\n")
    desired = load_desired(good, prune=True)
    report = await reconcile_account(
        client,
        ReconcileOptions(apply=True),
        known=[],
        desired=desired.entries,
        output_dir=tmp_path,
    )
    assert report.numbers(Category.ALIAS_DRIFT) == ["+14155550001"]
    assert report.numbers(Category.MISSING) == ["+14155550002"]
    assert (await client.get("+14155550001")).alias == "front desk"

    broken = tmp_path / "broken.csv"
    broken.write_text("phone_number,alias\n+14155550001,a\nnot a number,b\n")
    assert load_desired(broken).rejected_lines == (3,)
    with pytest.raises(DesiredStateError, match=r"1 row\(s\) rejected \(lines 3\)"):
        load_desired(broken, prune=True)
