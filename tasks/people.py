"""Glue between the run and `callerid.people`: SMTP from the environment or a Prefect block, the
operator's notification block, the people lane beside the loop, and the failure automation.

Telling the operator never fails a run: every notification error is logged and swallowed.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect.blocks.core import Block

from callerid.people import (
    PeopleLane,
    SmtpMailer,
    SmtpSettings,
    WaveReport,
    announce,
    parse_smtp_url,
)
from callerid.people.mail import DEFAULT_FROM, ENV_URL
from callerid.people.owners import asked_rows, assign_owners, owners_of_rows
from callerid.people.page import REFRESH_S, code_page_base
from callerid.people.records import failed_notices, notice_counts
from callerid.pipeline.session import Pipeline

log = logging.getLogger(__name__)

FAILURE_AUTOMATION = "bulk-verify failed or crashed"
PAGE_LINGER_S = 2 * REFRESH_S
OWNERS_ARTIFACT = "bulk-verify-owners"


def mail_settings(smtp_block: str | None = None) -> SmtpSettings | None:
    """`--smtp-block` (a prefect-email EmailServerCredentials block) > CALLERID_SMTP_URL > none."""
    if smtp_block:
        from prefect_email import EmailServerCredentials

        block: Any = EmailServerCredentials.load(smtp_block, _sync=True)
        kind = getattr(block.smtp_type, "name", str(block.smtp_type)).upper()
        server = getattr(block.smtp_server, "value", block.smtp_server)
        is_ssl = kind == "SSL"
        return SmtpSettings(
            host=str(server),
            port=int(block.smtp_port or getattr(block.smtp_type, "value", 25)),
            username=block.username or None,
            password=block.password if block.password.get_secret_value() else None,
            starttls=kind == "STARTTLS",
            ssl=is_ssl,
            sender=os.environ.get("CALLERID_SMTP_FROM") or block.username or DEFAULT_FROM,
            verify_tls=block.verify is not False,
        )
    url = os.environ.get(ENV_URL, "").strip()
    return parse_smtp_url(url) if url else None


async def smtp_settings_or_why(smtp_block: str | None) -> tuple[SmtpSettings | None, str | None]:
    """The mail settings, or why they cannot be used (recorded on every message: a bad URL or
    a missing block never fails the run). Read in a worker thread: loading a block is blocking
    I/O, and the run's event loop must not wait on it."""
    try:
        return await asyncio.to_thread(mail_settings, smtp_block), None
    except Exception as exc:
        return None, f"SMTP settings unusable: {type(exc).__name__}: {exc}"


def ui_url(flow_run_id: str | None) -> str | None:
    """The run's page in the Prefect UI, when a server with a UI is configured."""
    from prefect.settings import PREFECT_UI_URL

    base = PREFECT_UI_URL.value()
    if not base or not flow_run_id or not os.environ.get("PREFECT_API_URL"):
        return None
    return f"{str(base).rstrip('/')}/runs/flow-run/{flow_run_id}"


async def notify(block_name: str | None, body: str, subject: str) -> bool:
    """Tell the operator through the notification block `block_name` ("slug/name"); a failure is
    logged, never raised."""
    if not block_name:
        return False
    try:
        block: Any = await Block.aload(block_name)
        await block.anotify(body, subject=subject)
    except Exception as exc:
        log.warning("could not notify through %s: %s: %s", block_name, type(exc).__name__, exc)
        return False
    return True


def assign_run_owners(pipeline: Pipeline, accepted: Sequence[Any]) -> int:
    """Keep each accepted row's owner on its number; returns how many numbers have one."""
    owners = owners_of_rows(accepted)
    if not owners:
        return 0
    with pipeline.ledger.unit_of_work() as uow:
        assign_owners(uow.session, pipeline.account, owners)
        uow.commit()
    return len(owners)


def people_summary(pipeline: Pipeline) -> tuple[dict[str, int], dict[str, str]]:
    """The run's notification counts, and E.164 -> why its owner could not be emailed."""
    with pipeline.ledger.unit_of_work() as uow:
        counts = notice_counts(uow.session, pipeline.account, pipeline.run_id)
        failed = failed_notices(uow.session, pipeline.account, pipeline.run_id)
    return counts.as_dict(), failed


class PeopleGlue:
    """Runs the people lane for one run and tells the operator and the terminal about waves."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        base_url: str | None,
        smtp: tuple[SmtpSettings | None, str | None],
        notify_block: str | None,
        ask_after: timedelta,
        logger: Any,
        at_once: frozenset[str] = frozenset(),
    ) -> None:
        self.pipeline = pipeline
        self.notify_block = notify_block
        self.logger = logger
        settings, unusable = smtp
        if unusable:
            logger.error("%s", unusable)
        mailer = SmtpMailer(settings) if settings is not None else None
        if mailer is None and unusable is None:
            logger.warning("owners are named but no SMTP is configured (%s, --smtp-block)", ENV_URL)
        self.lane = PeopleLane(
            pipeline.ledger,
            pipeline.account,
            pipeline.run_id,
            lambda: pipeline.e164s,
            pipeline.clock,
            base_url or "",
            mailer if base_url else None,
            ask_after=ask_after,
            at_once=at_once,
        )
        if not base_url:
            logger.warning("owners are named but the code page has no public URL (--public-url)")
            self.lane.why_not = "no --public-url for the code page's links"
        elif unusable:
            self.lane.why_not = unusable
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def on_wave(self, report: WaveReport) -> None:
        form = await form_link()
        link = form or "no Prefect UI (set PREFECT_API_URL to a server for one)"
        # INFO: the UI and run.log; `callerid run` prints its own line from waiting.jsonl (a
        # WARNING here would say it twice on a TTY, and not at all on a non-TTY terminal).
        self.logger.info("%s; form: %s", report.line(), link)
        await asyncio.to_thread(self.announce, report, form)
        if report.reminder:
            return
        body = (
            f"{report.numbers} numbers wait for a person ({report.emailed} owners emailed); "
            f"form: {link}"
        )
        await notify(self.notify_block, body, f"bulk-verify: wave {report.wave}")

    def announce(self, report: WaveReport, form: str | None) -> None:
        """The terminal's line for this wave, through the run's `waiting.jsonl`."""
        no_mail = self.lane.mailer is None
        try:
            announce.write(
                self.pipeline.paths.root,
                announce.Waiting(
                    wave=report.wave,
                    numbers=report.numbers,
                    owners=report.owners,
                    emailed=report.emailed,
                    failed=report.failed,
                    reminder=report.reminder,
                    channels=dict(report.channels),
                    form=form,
                    page=self.lane.base_url or None,
                    why_not=self.lane.why_not if no_mail else None,
                ),
            )
        except OSError as exc:  # the terminal's line is a courtesy; the run goes on
            log.warning("could not write the run's waiting.jsonl: %s", type(exc).__name__)

    def start(self) -> None:
        self._task = asyncio.ensure_future(self.lane.run(self._stop, on_wave=self.on_wave))

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def linger(self) -> None:
        """Keep an in-process code page up a little after the run, so the owners who typed the
        last codes see them verified (the page refreshes every few seconds)."""
        if self.pipeline.code_page_base is not None and self.lane.waves_sent:
            await asyncio.sleep(PAGE_LINGER_S)


async def announce_form(folder: Path, numbers: int, *, wait_s: float = 20.0) -> None:
    """The terminal's line for an `--ask-person` form: once its paused run shows up (its own UI
    link), or after `wait_s` with the run's link; at once when there is no UI to link to."""
    from prefect.runtime import flow_run

    form = await form_link()
    run_link = ui_url(flow_run.get_id())
    deadline = asyncio.get_running_loop().time() + wait_s
    while form is not None and form == run_link and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.5)
        form = await form_link()
    try:
        await asyncio.to_thread(
            announce.write, folder, announce.Waiting(wave=0, numbers=numbers, form=form)
        )
    except OSError as exc:
        log.warning("could not write the run's waiting.jsonl: %s", type(exc).__name__)


async def form_link() -> str | None:
    """The UI link of this run's paused form (`--ask-person`) if there is one, else of the run."""
    from prefect.runtime import flow_run

    run_id = flow_run.get_id()
    if ui_url(run_id) is None:
        return None
    from uuid import UUID

    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    try:
        async with get_client() as client:
            paused = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[UUID(str(run_id))]),
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])),
                )
            )
    except Exception as exc:  # the link is a courtesy: the run's own page will do
        log.info("could not look for a paused form: %s", type(exc).__name__)
        paused = []
    return ui_url(str(paused[0].id)) if paused else ui_url(run_id)


async def start_people(
    pipeline: Pipeline,
    accepted: Sequence[Any],
    *,
    smtp_block: str | None,
    notify_block: str | None,
    public_url: str | None,
    ask_after: timedelta,
    logger: Any,
) -> PeopleGlue | None:
    """Record the rows' owners; when any number has one, start the people lane."""
    if not await asyncio.to_thread(assign_run_owners, pipeline, accepted):
        return None
    # `--public-url` is the links' base; the webhook's URL (`inbox serve --public-url`) works too.
    base = code_page_base(public_url) if public_url else pipeline.code_page_base
    glue = PeopleGlue(
        pipeline,
        base_url=base,
        smtp=await smtp_settings_or_why(smtp_block),
        notify_block=notify_block,
        ask_after=ask_after,
        logger=logger,
        at_once=asked_rows(accepted),
    )
    glue.start()
    return glue


def write_people_report(pipeline: Pipeline) -> dict[str, Any]:
    """`notifications.csv` in the run's folder (every message: wave, kind, owner, numbers,
    status, error) and the counts; numbers whose owner could not be emailed, with why."""
    import csv

    from sqlalchemy import select

    from callerid.ledger.models import Notification

    counts, failed = people_summary(pipeline)
    path = pipeline.paths.root / "notifications.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with pipeline.ledger.unit_of_work() as uow, path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["wave", "kind", "owner", "numbers", "status", "error", "at"])
        query = (
            select(Notification)
            .where(Notification.account == pipeline.account, Notification.run_id == pipeline.run_id)
            .order_by(Notification.id)
        )
        for row in uow.session.execute(query).scalars():
            writer.writerow(
                [
                    row.wave,
                    row.kind,
                    row.owner,
                    " ".join(row.numbers),
                    row.status,
                    row.error or "",
                    row.created_at.isoformat(),
                ]
            )
    markdown = owners_markdown(counts, failed)
    with pipeline.paths.summary_md.open("a", encoding="utf-8") as fh:
        fh.write("\n" + markdown)
    return {
        **counts,
        "not_emailed": failed,
        "notifications_csv": str(path),
        "markdown": markdown,
    }


async def publish_people_report(pipeline: Pipeline) -> dict[str, Any]:
    """`write_people_report`, then the same owners' section as the run's `bulk-verify-owners`
    artifact in the UI (the summary artifact is published before the lane's last word). An
    artifact that cannot be created is logged; the files are written either way."""
    people = await asyncio.to_thread(write_people_report, pipeline)
    markdown = people.pop("markdown")
    try:
        from prefect.artifacts import acreate_markdown_artifact

        await acreate_markdown_artifact(
            markdown, key=OWNERS_ARTIFACT, description="Owners emailed, and who could not be"
        )
    except Exception as exc:
        log.warning("the owners' artifact was not published: %s", type(exc).__name__)
    return people


def owners_markdown(counts: dict[str, int], failed: dict[str, str]) -> str:
    """The owners' part of the run's `summary.md`: who was emailed, and who could not be."""
    lines = [
        "",
        "## Owners",
        "",
        f"{counts['owners_emailed']} owners emailed in {counts['waves']} waves "
        f"({counts['emails_sent']} messages, {counts['reminders']} reminders); "
        f"{counts['emails_failed']} messages could not be sent (notifications.csv).",
    ]
    if failed:
        lines += ["", "| number | why its owner was not emailed |", "| --- | --- |"]
        lines += [f"| {e164} | {why} |" for e164, why in sorted(failed.items())[:200]]
    return "\n".join(lines).lstrip("\n") + "\n"


async def notify_end(
    block_name: str | None,
    run_id: str,
    counts: dict[str, int],
    people: dict[str, Any] | None,
) -> None:
    if not block_name:
        return
    parts = ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))
    mail = ""
    if people:
        mail = f"; owners emailed {people['owners_emailed']}, not sent {people['emails_failed']}"
    link = ui_url(run_id)
    body = f"bulk-verify run {run_id} finished: {parts}{mail}" + (f"; {link}" if link else "")
    await notify(block_name, body, "bulk-verify finished")


async def ensure_failure_automation(block_name: str) -> str:
    """An automation that sends `block_name` a message when a bulk-verify run fails or crashes
    (the run cannot say that itself). Replaces an earlier one of the same name."""
    from prefect.automations import Automation
    from prefect.client.orchestration import get_client
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger, Posture

    block: Any = await Block.aload(block_name)
    if not hasattr(block, "anotify"):
        raise ValueError(f"{block_name} is not a notification block")
    block_id = block._block_document_id
    async with get_client() as client:
        for existing in await client.read_automations_by_name(FAILURE_AUTOMATION):
            await client.delete_automation(existing.id)
    automation = Automation(
        name=FAILURE_AUTOMATION,
        description="Tell the operator when a bulk-verify run fails or crashes.",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": "bulk-verify"},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[
            SendNotification(
                block_document_id=block_id,
                subject="bulk-verify run {{ flow_run.name }}: {{ flow_run.state.name }}",
                body=(
                    "bulk-verify run {{ flow_run.name }} ended {{ flow_run.state.name }}: "
                    "{{ flow_run|ui_url }}"
                ),
            )
        ],
    )
    created = await automation.acreate()
    return str(created.id)
