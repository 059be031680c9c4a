"""`bulk_verify`: a CSV of phone numbers verified as Plivo caller IDs, end to end.

    ingest -> register in the ledger -> list the account (mark already verified)
    -> recover what a crashed run left mid-call -> loop (callerid.pipeline.runner.drive):
       complete matched OTPs, expire and re-queue, initiate within the limiter and the in-flight cap
    -> list again to confirm -> reports and artifacts

This module only sequences: every step is a task in `tasks/` over a function in `callerid/`, one
task run per batch. The ledger, not Prefect, is the record of every number (prefect-notes §0.1),
so a rerun with the same CSV carries on where the last one stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

from prefect import flow, get_client, get_run_logger
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.context import FlowRunContext
from prefect.exceptions import NotPausedError
from prefect.flow_runs import aresume_flow_run
from prefect.runtime import flow_run
from prefect.utilities.urls import url_for

from callerid.ingest import IngestResult
from callerid.pipeline import PipelineOptions, RunPaths, ledger_ops
from callerid.pipeline.environment import PlivoAccessError, open_run
from callerid.pipeline.finish import RunIncompleteError, forget_spent_codes
from callerid.pipeline.plain import ProgressWriter
from callerid.pipeline.runner import StepFailures, Work, drive
from callerid.pipeline.session import Pipeline, StepResult
from callerid.pipeline.steps import decision_time
from tasks.account import account_limiter, account_settings
from tasks.ingest import ingest_task
from tasks.people import PeopleGlue, announce_form, notify_end, publish_people_report, start_people
from tasks.report import ProgressArtifact, publish_plan, report_task
from tasks.verify import (
    complete_task,
    confirm_task,
    expire_task,
    initiate_task,
    plan_task,
    recover_task,
    register_task,
    sync_listed_task,
    unwalked,
)

# An SMS code normally reaches the inbox within seconds; after this a person is asked instead.
ASK_PERSON_AFTER = timedelta(minutes=2)
# While the run only waits for codes, say so in its log this often (not at every poll).
WAITING_LOG_EVERY_S = 30.0


def run_name() -> str:
    """The flow run's name until the file is read: the input file's name, not a random one."""
    parameters = flow_run.get_parameters() or {}
    return Path(str(parameters.get("csv_path") or "bulk-verify")).name


async def name_flow_run(csv_path: str, numbers: int, paths: RunPaths) -> None:
    """Rename the flow run `sample.csv · 45 numbers` now that the file is read, and leave its
    id, name and UI link in the run's folder (the CLI prints the link from there)."""
    run_id = flow_run.get_id()
    name = f"{Path(csv_path).name} · {numbers} numbers"
    if run_id is not None:
        async with get_client() as client:
            await client.set_flow_run_name(UUID(run_id), name)
    # url_for says None without a UI (the temporary server has none to link to)
    ui_url = url_for("flow-run", obj_id=run_id) if run_id is not None else None
    info = {"id": run_id, "name": name, "ui_url": ui_url}
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.flow_run_json.write_text(json.dumps(info), encoding="utf-8")


def untracked(result: StepResult) -> StepResult:
    """`result` without Prefect's lineage record of it. For the flow run's whole life Prefect
    keeps a copy of each task run's state keyed by the id of its result (and of the result's
    fields), to link the result to a task it is later passed to; the loop's step results are
    never passed on, and at ~4 KB a task run the records of a 100,000-number run's thousands of
    batches add up."""
    context = FlowRunContext.get()
    if context is not None:
        for part in (result, result.attempted, result.counts):
            context.run_results.pop(id(part), None)
    return result


class PrefectLoopOps:
    """`runner.LoopOps` whose steps are Prefect tasks (one task run per batch, none when idle)."""

    def __init__(self, pipeline: Pipeline, *, ask_person: bool = False) -> None:
        self.pipeline = pipeline
        self.ask_person = ask_person
        self.writer = ProgressWriter(pipeline)
        self.artifact = ProgressArtifact()
        self._asked: set[str] = set()
        self._person: asyncio.Future[Any] | None = None
        self._announcing: set[asyncio.Future[None]] = set()  # held: the loop keeps weak refs
        self._limited_seen = 0
        self._waiting_logged_at = float("-inf")

    async def sync_clock(self) -> None:
        await self.pipeline.sync_clock()

    async def work(self) -> Work:
        return await asyncio.to_thread(ledger_ops.work, self.pipeline, decision_time(self.pipeline))

    async def complete(self) -> StepResult:
        return untracked(await complete_task(self.pipeline))

    async def expire(self) -> StepResult:
        done = untracked(await expire_task(self.pipeline))
        await asyncio.to_thread(forget_spent_codes, self.pipeline)  # windows just ended
        return done

    async def initiate(self, limit: int) -> StepResult:
        return untracked(await initiate_task(self.pipeline, limit))

    async def progress(self, work: Work) -> None:
        await asyncio.to_thread(self.writer.write, work)
        await self.artifact.update(work, len(self.pipeline.e164s))
        self.log_rate_limited()

    def log_rate_limited(self) -> None:
        """Say in the run's log (the UI's Logs tab) when Plivo answered 429 and the client
        waited and retried: the run goes on, but the account is busier than the limiter thinks."""
        total = self.pipeline.client.limiter.rate_limited_total
        if total > self._limited_seen:
            get_run_logger().info(
                "Plivo answered 429 (rate limited) %d time(s); the client absorbed them "
                "(waited and retried)",
                total - self._limited_seen,
            )
            self._limited_seen = total

    def log_waiting(self, work: Work) -> None:
        now = time.monotonic()
        if now - self._waiting_logged_at < WAITING_LOG_EVERY_S:
            return
        self._waiting_logged_at = now
        get_run_logger().info(
            "waiting for OTP codes: %d verification(s) live, %d number(s) of this run not final",
            work.live,
            work.pending,
        )

    async def idle(self, work: Work) -> None:
        """With `ask_person`, put the numbers no inbox will answer for in front of a person.

        The form is a paused `collect-otps-from-person` subflow; it runs beside the loop, so
        codes that arrive meanwhile (inbox, `callerid otp submit`) are still completed at once.
        """
        self.log_waiting(work)
        if not self.ask_person or (self._person is not None and not self._person.done()):
            return
        now = self.pipeline.clock.now()
        waiting = [
            e164
            for e164 in ledger_ops.waiting_for_person(self.pipeline, now, ASK_PERSON_AFTER)
            if e164 not in self._asked
        ]
        if waiting:
            from flows.otp_wait import collect_otps_from_person

            self._asked.update(waiting)
            get_run_logger().info(
                "asking a person for the codes of %d number(s): a form in the Prefect UI "
                "(subflow collect-otps-from-person); `callerid otp submit` works too",
                len(waiting),
            )
            # The terminal's line (`callerid run` prints it), with the form's UI link.
            announcing = asyncio.ensure_future(
                announce_form(self.pipeline.paths.root, len(waiting))
            )
            self._announcing.add(announcing)
            announcing.add_done_callback(self._announcing.discard)
            self._person = asyncio.ensure_future(  # a flow call is typed as a bare Awaitable
                collect_otps_from_person(
                    self.pipeline.account,
                    waiting,
                    ledger_url=self.pipeline.ledger.url,
                    return_state=True,  # a pause that times out fails the subflow, not this run
                )
            )

    async def close(self) -> None:
        """Every number is final: end a form still waiting for a person (its numbers were
        settled another way), so the subflow completes instead of pausing until its timeout."""
        for announcing in list(self._announcing):
            announcing.cancel()  # still looking for the form's link: the form is over
        if self._person is None or self._person.done():
            return
        parent = flow_run.get_id()
        async with get_client() as client:
            while not self._person.done():
                paused = await client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(
                        parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[UUID(parent)]),
                        state=FlowRunFilterState(
                            type=FlowRunFilterStateType(any_=[StateType.PAUSED])
                        ),
                    )
                )
                for run in paused:
                    with contextlib.suppress(NotPausedError):
                        await aresume_flow_run(run.id, run_input={})
                await asyncio.wait({self._person}, timeout=1.0)


@flow(name="bulk-verify", flow_run_name=run_name, log_prints=False)
async def bulk_verify(
    csv_path: str,
    default_region: str = "US",
    channel: Literal["sms", "call", "auto"] = "auto",
    subaccount: str | None = None,
    max_attempts: int = 2,
    max_in_flight: int = 300,
    batch_size: int = 100,
    dry_run: bool = False,
    ask_person: bool = False,
    encoding: str | None = None,
    run_id: str | None = None,
    poll_interval_s: float = 0.5,
    follow_sandbox_clock: bool = False,
    sandbox_reply_delay_s: float = 1.0,
    shared_rate_limit: bool | None = None,
    smtp_block: str | None = None,
    notify: str | None = None,
    public_url: str | None = None,
    ask_person_after_s: float = ASK_PERSON_AFTER.total_seconds(),
    sheet: str | None = None,
    owner: str | None = None,
) -> dict[str, Any]:
    """Verify every number of `csv_path`; return the run's counts and report paths.

    `ask_person`: when numbers wait for a code no inbox will see (voice calls, silent phones),
    pause with a Prefect UI form listing them; leave it off when nobody watches the UI (a person
    can always use `callerid otp submit`). `follow_sandbox_clock`: PLIVO_API_URL is a sandbox run
    elsewhere (tests); follow its clock. `shared_rate_limit`: feed the account's limiter from a
    Prefect global concurrency limit (default: when PREFECT_API_URL is set).

    Owners (the rows' `owner` column): numbers that need a person (voice calls at once, SMS
    after `ask_person_after_s` without a code) are emailed to their owners, one message per owner
    per wave, over `smtp_block` (a prefect-email EmailServerCredentials block) or
    CALLERID_SMTP_URL, with links to the code page at `public_url` (default: the in-process
    receiver's address). `notify`: a Prefect notification block ("slug/name") told about each
    wave and the run's end; a failure to notify never fails the run.
    """
    logger = get_run_logger()
    started = time.monotonic()
    run_id = run_id or str(flow_run.get_id() or uuid.uuid4())
    options = PipelineOptions(
        default_region=default_region,
        channel=channel,
        subaccount=subaccount,
        encoding=encoding,
        sheet=sheet,
        owner=owner,
        max_attempts=max_attempts,
        max_in_flight=max_in_flight,
        batch_size=batch_size,
        poll_interval_s=poll_interval_s,
        dry_run=dry_run,
    )
    settings = account_settings()
    limiter = None
    if not settings.uses_sandbox:
        limiter = account_limiter(settings, shared=shared_rate_limit)
    ingest: IngestResult = ingest_task(
        csv_path,
        default_region=default_region,
        encoding=encoding,
        default_channel=channel,
        default_subaccount=subaccount,
        sheet=sheet,
        default_owner=owner,
    )
    await name_flow_run(
        csv_path, len(ingest.accepted), RunPaths.for_run(settings.output_dir, run_id)
    )
    async with open_run(
        settings,
        options,
        run_id=run_id,
        csv_path=csv_path,
        follow_sandbox_clock=follow_sandbox_clock,
        sandbox_reply_delay_s=sandbox_reply_delay_s,
        limiter=limiter,
    ) as pipeline:
        if pipeline.uses_sandbox:
            logger.warning(
                "using the local sandbox at %s: nothing goes to Plivo", pipeline.sandbox_url
            )
        # Wrong credentials or an unreachable PLIVO_API_URL: one cheap call says so before any
        # number is registered; the run still writes its reports and summary with the reason.
        failed = StepFailures()
        refused: PlivoAccessError | None = None
        try:
            await pipeline.check_access()
        except PlivoAccessError as exc:
            if dry_run:
                raise
            refused = exc
            failed.reasons.append(str(exc))
            logger.error("%s", exc)
        if dry_run:
            plan = await plan_task(pipeline, unwalked(ingest))
            await publish_plan(plan)
            return {
                "run_id": run_id,
                "dry_run": True,
                "plan": plan.as_dict(),
                "plan_lines": plan.lines(),
            }
        # Each step fails alone (after its own retries): the reports and the summary artifact are
        # written whatever failed, and the ledger keeps every number's state for the next run.
        people: PeopleGlue | None = None
        registered = (
            None
            if refused
            else await failed.contain("register", lambda: register_task(pipeline, unwalked(ingest)))
        )
        if registered is not None:
            people = await failed.contain(
                "people",
                lambda: start_people(
                    pipeline,
                    ingest.accepted,
                    smtp_block=smtp_block,
                    notify_block=notify,
                    public_url=public_url,
                    ask_after=timedelta(seconds=ask_person_after_s),
                    logger=logger,
                ),
            )
            await failed.contain("list the account", lambda: sync_listed_task(pipeline))
            await failed.contain("recover", lambda: recover_task(pipeline))
            ops = PrefectLoopOps(pipeline, ask_person=ask_person)

            async def verify() -> Work:
                try:
                    return await drive(ops, options)
                finally:
                    await ops.close()
                    if people is not None:
                        await people.stop()

            await failed.contain("verify", verify)
            await failed.contain("confirm", lambda: confirm_task(pipeline))
            ops.log_rate_limited()
        elapsed_s = time.monotonic() - started
        result = await report_task(pipeline, unwalked(ingest), elapsed_s, incomplete=failed.reasons)
        outcome = {**result.as_dict(), "elapsed_s": elapsed_s}
        if people is not None:
            outcome["people"] = await publish_people_report(pipeline)
            await people.linger()
    if not ingest.accepted:
        logger.error(
            "no row could be verified: %d rejected (see %s)",
            len(ingest.rejected),
            result.rejects_csv,
        )
    await notify_end(notify, run_id, result.counts, outcome.get("people"))
    if refused is not None:
        raise refused  # its one line says it all; the reports say it too
    if not result.complete:
        logger.error("run %s is incomplete: %s", run_id, "; ".join(result.incomplete))
        raise RunIncompleteError(run_id, result.incomplete, outcome)
    logger.info("run %s finished in %.1f s: %s", run_id, elapsed_s, result.counts)
    return outcome
