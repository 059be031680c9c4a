"""The reconcile flow under Prefect's test harness against the sandbox: categories, artifacts,
dry run versus apply/prune/requeue, and the ledger's re-queue."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest

from callerid.ledger import NumberRecord, NumberStatus
from callerid.sandbox import DEFAULT_AUTH_ID
from tests.e2e.conftest import World

pytestmark = pytest.mark.slow

SA1, SA2 = "SASANDBOXSUBACCT0001", "SASANDBOXSUBACCT0002"


def _seed(world: World) -> None:
    """Ledger: 4 verified, 1 pending. Account: 3 of them (one renamed, one moved) + 1 stranger."""
    now = datetime.now(UTC)
    with world.ledger.unit_of_work() as uow:
        uow.numbers.upsert_many(
            DEFAULT_AUTH_ID,
            [
                NumberRecord("+14155550001", alias="ok"),
                NumberRecord("+14155550002", alias="original"),
                NumberRecord("+14155550003", alias="moved", subaccount=SA1),
                NumberRecord("+14155550004", alias="deleted-by-hand"),
                NumberRecord("+14155550005", alias="pending"),
            ],
            None,
            now,
        )
        for number in ("+14155550001", "+14155550002", "+14155550003", "+14155550004"):
            row = uow.numbers.get(DEFAULT_AUTH_ID, number)
            assert row is not None
            uow.numbers.transition(row, NumberStatus.VERIFIED, reason="seed", run_id=None, now=now)
        uow.commit()
    backend = world.sandbox.backend
    backend.seed_verified("+14155550001", alias="ok")
    backend.seed_verified("+14155550002", alias="renamed-by-hand")
    backend.seed_verified("+14155550003", alias="moved", subaccount=SA2)
    backend.seed_verified("+14155550009", alias="stranger")


async def _artifact(key: str) -> str:
    from prefect.artifacts import Artifact

    found = await Artifact.aget(key)
    assert found is not None, key
    return str(found.data)


async def test_dry_run_then_apply_prune_and_requeue(prefect_api: str, world: World) -> None:
    from flows.reconcile import reconcile

    _seed(world)
    dry = await reconcile()
    assert dry["applied"] is False
    assert {k: v for k, v in dry["counts"].items() if v} == {
        "verified": 1,
        "extra": 1,
        "lost": 1,
        "alias_drift": 1,
        "subaccount_drift": 1,
        "pending": 1,
    }
    assert dry["actions"] == {"update:planned": 2}
    assert world.caller_id("+14155550002").alias == "renamed-by-hand"  # type: ignore[union-attr]
    with Path(dry["report_csv"]).open(newline="") as fh:
        rows = {r["phone_number"]: r for r in csv.DictReader(fh)}
    assert rows["+14155550004"]["category"] == "lost"
    assert "dry run" in await _artifact("reconcile-summary")
    assert "+14155550009" in await _artifact("reconcile-attention")

    applied = await reconcile(apply=True, prune=True, requeue_lost=True)
    assert applied["actions"] == {"update:done": 2, "delete:done": 1, "requeue:done": 1}
    assert world.caller_id("+14155550002").alias == "original"  # type: ignore[union-attr]
    assert world.caller_id("+14155550003").subaccount == SA1  # type: ignore[union-attr]
    assert world.caller_id("+14155550009") is None
    with world.ledger.unit_of_work() as uow:
        lost = uow.numbers.get(DEFAULT_AUTH_ID, "+14155550004")
        assert lost is not None and lost.status == "queued"

    again = await reconcile()
    assert {k: v for k, v in again["counts"].items() if v} == {"verified": 3, "pending": 2}
    assert again["actions"] == {}


def test_token_comes_from_the_secret_block_when_the_environment_lacks_it(
    prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from tasks.account import account_settings, store_token
    from tasks.steps import prepare_account

    store_token("token-from-the-block")
    monkeypatch.setenv("PLIVO_AUTH_ID", DEFAULT_AUTH_ID)
    monkeypatch.setenv("PLIVO_AUTH_TOKEN", "")  # set but empty: absent, and restored after
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    token = account_settings().plivo_auth_token
    assert token is not None and token.get_secret_value() == "token-from-the-block"
    assert "token-from-the-block" not in repr(account_settings())
    assert prepare_account() == {"rate_limit": "in-process"}
    assert os.environ["PLIVO_AUTH_TOKEN"] == "token-from-the-block"


def test_cli_runs_the_flow_with_prefect_flag(prefect_api: str, world: World) -> None:
    from typer.testing import CliRunner

    from callerid.cli import app

    _seed(world)
    result = CliRunner().invoke(app, ["reconcile", "--prefect"])
    assert result.exit_code == 0, result.output
    assert "'alias_drift': 1" in result.output and "'applied': False" in result.output
