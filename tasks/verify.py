"""Thin Prefect tasks over `callerid.pipeline`: one task run per batch, never per number.

Every task here uses `NO_CACHE` (its first argument is the live `Pipeline`: sockets and a database
engine, nothing to hash) and `retries=0`: the Plivo client already retries what is safe to retry,
and a Prefect retry on top would multiply them, or worse, repeat an initiate (style.md rule 6).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar, cast

from prefect import Task, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

from callerid.ingest import IngestResult
from callerid.pipeline import account, ledger_ops, steps
from callerid.pipeline.plan import Plan
from callerid.pipeline.session import Pipeline, StepResult

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


def unwalked(value: T) -> T:
    """`value` as a task argument Prefect passes through without walking it: Prefect looks for
    futures in every element of a task's arguments (and a run's ingest holds a dataclass per
    number: ~8,000 visits per 1,000 numbers, per task). The task receives `value` itself."""
    return cast(T, quote(value))


def _batch_task(name: str) -> Callable[[Callable[P, R]], Task[P, R]]:
    """`@task` as every task here is declared (see the module docstring)."""
    return task(name=name, cache_policy=NO_CACHE, retries=0, persist_result=False)


def _logged(result: StepResult, what: str) -> StepResult:
    """One line per batch in the task run's log: counts by outcome (never a number's code)."""
    if result:
        outcome = ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items()))
        get_run_logger().info("%d %s: %s", result.attempted, what, outcome)
    return result


@_batch_task("register-numbers")
async def register_task(pipeline: Pipeline, ingest: IngestResult) -> int:
    """Upsert the accepted rows into the ledger (numbers it knows keep their status)."""
    registered = ledger_ops.register(pipeline, ingest)
    get_run_logger().info("%d numbers registered in the ledger", registered)
    return registered


@_batch_task("plan-run")
async def plan_task(pipeline: Pipeline, ingest: IngestResult) -> Plan:
    """The dry run: what would be sent. Reads the account and the ledger; writes nothing."""
    return await account.plan(pipeline, ingest)


@_batch_task("sync-listed")
async def sync_listed_task(pipeline: Pipeline) -> StepResult:
    """List the account's caller IDs; mark this run's numbers found there as verified."""
    return _logged(await account.sync_listed(pipeline), "already listed by the account")


@_batch_task("recover-interrupted")
async def recover_task(pipeline: Pipeline) -> StepResult:
    """Resolve numbers a crashed run left mid-call (intent rows), without re-sending anything."""
    return _logged(await account.recover(pipeline), "interrupted numbers resolved")


@_batch_task("complete-batch")
async def complete_task(pipeline: Pipeline) -> StepResult:
    """Submit the OTPs the inbox matched, as one batch."""
    return _logged(await steps.complete_matched(pipeline), "codes submitted")


@_batch_task("expire-batch")
async def expire_task(pipeline: Pipeline) -> StepResult:
    """Expire what missed its window; re-queue within the attempt budget; resolve leftovers."""
    return _logged(await steps.expire_due(pipeline), "past their window")


@_batch_task("initiate-batch")
async def initiate_task(pipeline: Pipeline, limit: int) -> StepResult:
    """Initiate up to `limit` queued numbers of this run (intent rows committed first)."""
    return _logged(await steps.initiate_batch(pipeline, limit), "initiations")


@_batch_task("confirm-listed")
async def confirm_task(pipeline: Pipeline) -> StepResult:
    """List the account again and check that every number we verified is there."""
    return _logged(await account.confirm(pipeline), "changed by the confirming list")
