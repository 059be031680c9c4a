"""Steps that look at the whole account: list its caller IDs, recover a crash, confirm, plan.

Listing costs one request per 20 caller IDs; a run lists twice (before, to skip numbers already
verified, and after, to confirm). Recovery reuses the first list instead of a GET per leftover.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from callerid.pipeline import ledger_ops
from callerid.pipeline.plan import Plan, build_plan
from callerid.pipeline.session import Pipeline, StepResult
from callerid.pipeline.steps import decision_time

if TYPE_CHECKING:
    from callerid.ingest import IngestResult

log = logging.getLogger(__name__)


async def listed_numbers(pipeline: Pipeline) -> set[str]:
    """Every caller ID of the account (for a subaccount run, of that subaccount)."""
    found: set[str] = set()
    async for caller in pipeline.client.list(subaccount=pipeline.options.subaccount):
        found.add(caller.phone_number)
    pipeline.listed = found
    return found


async def sync_listed(pipeline: Pipeline) -> StepResult:
    """Mark this run's numbers that the account already lists: nothing is sent for them."""
    listed = await listed_numbers(pipeline)
    counts = ledger_ops.mark_listed(pipeline, listed)
    return StepResult(sum(counts.values()), counts)


async def recover(pipeline: Pipeline) -> StepResult:
    """Resolve intent rows a crash left behind, using the list taken by `sync_listed`."""
    listed = pipeline.listed if pipeline.listed is not None else await listed_numbers(pipeline)
    counts = ledger_ops.recover(pipeline, listed, decision_time(pipeline))
    return StepResult(sum(counts.values()), counts)


async def confirm(pipeline: Pipeline) -> StepResult:
    """List again: every number the ledger calls verified must be there (mismatches are logged
    and reported), and a number listed but not yet final in the ledger is verified."""
    listed = await listed_numbers(pipeline)
    counts = ledger_ops.mark_listed(pipeline, listed)
    missing = ledger_ops.verified_but_unlisted(pipeline, listed)
    if missing:
        log.warning(
            "%d number(s) verified in the ledger are not listed by the account", len(missing)
        )
        counts["verified_but_unlisted"] = len(missing)
    return StepResult(sum(counts.values()), counts)


async def plan(pipeline: Pipeline, ingest: IngestResult) -> Plan:
    """The dry run: read the account and the ledger, send nothing, write nothing but plan.json."""
    listed = await listed_numbers(pipeline)
    e164s = [row.e164 for row in ingest.accepted]
    limiter = pipeline.client.limiter
    result = build_plan(
        e164s,
        len(ingest.rejected),
        listed,
        ledger_ops.statuses(pipeline, e164s),
        max_requests=limiter.max_requests,
        period_s=limiter.period_s,
        channels={row.e164: str(row.channel) for row in ingest.accepted},
    )
    pipeline.paths.root.mkdir(parents=True, exist_ok=True)
    pipeline.paths.plan_json.write_text(json.dumps(result.as_dict(), indent=2), encoding="utf-8")
    return result
