"""Thin Prefect pieces over `callerid.inbox`: the inbox sources as tasks, the typed codes' task,
the IMAP credentials from a Secret block, and the thread that resumes a paused run by itself.

Everything that decides (matching, what counts as a code, which numbers still wait) lives in
`callerid.inbox`; this module only connects it to Prefect.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import FlowPauseTimeout, NotPausedError
from prefect.flow_runs import resume_flow_run

from callerid.inbox import filedrop, imap, manual, session_scope
from callerid.inbox.matcher import numbers_with_codes
from callerid.inbox.models import MessageSource
from callerid.inbox.waiting import still_waiting, window_end
from callerid.settings import load_settings
from tasks.account import secret_value

_TASK: dict[str, Any] = {"cache_policy": NO_CACHE, "retries": 0, "persist_result": False}
log = logging.getLogger(__name__)


def ledger_url_or_default(ledger_url: str | None) -> str:
    return ledger_url or load_settings().resolved_database_url()


def open_ledger_at(ledger_url: str | None) -> Any:
    from callerid.ledger import open_ledger

    return open_ledger(ledger_url_or_default(ledger_url))


def imap_config_from_secret(block_name: str) -> imap.ImapConfig:
    """IMAP settings kept in a Prefect Secret block holding a JSON object: host, username,
    password, and optionally port, tls (`ssl`/`starttls`), mailbox, cafile."""
    value = secret_value(block_name)
    if not isinstance(value, Mapping):
        raise imap.ImapError(f"Secret block {block_name!r} must hold a JSON object")
    settings = imap.ImapSettings.model_validate(dict(value))
    return settings.to_config()


@task(name="poll-imap-inbox", **_TASK)
def poll_mailbox_task(
    account: str, ledger_url: str | None = None, secret_block: str | None = None
) -> int:
    """Store the mailbox's unseen SMS e-mails (credentials: Secret block, else environment)."""
    if secret_block:
        config = imap_config_from_secret(secret_block)
    else:
        config = imap.ImapSettings().to_config()
    with open_ledger_at(ledger_url) as ledger:
        return imap.poll_mailbox(config, session_scope(ledger), account)


@task(name="take-drop-files", **_TASK)
def take_files_task(folder: str, account: str, ledger_url: str | None = None) -> int:
    """Store the messages of every file waiting in the drop folder; returns how many were new."""
    with open_ledger_at(ledger_url) as ledger:
        results = filedrop.take_files(folder, session_scope(ledger), account)
    return sum(r.stored for r in results)


@task(name="numbers-still-waiting", **_TASK)
def waiting_task(
    account: str, numbers: Sequence[str], ledger_url: str | None = None
) -> tuple[list[str], datetime | None]:
    """Which of `numbers` still wait for a code, and when the last of their windows closes."""
    with open_ledger_at(ledger_url) as ledger, ledger.unit_of_work() as uow:
        now = datetime.now(UTC)
        waiting = still_waiting(uow.session, account, numbers, now)
        return waiting, window_end(uow.session, account, waiting)


@task(name="record-typed-codes", **_TASK)
def record_typed_codes_task(
    account: str, codes: Mapping[str, str], flow_run_id: str, ledger_url: str | None = None
) -> int:
    """What a person typed into the form goes to the inbox table as source `ui`."""
    stored = 0
    with open_ledger_at(ledger_url) as ledger, ledger.unit_of_work() as uow:
        for e164, code in codes.items():
            external_id = f"ui:{flow_run_id}:{e164}"
            stored += manual.submit_code(
                uow.session, account, e164, code, MessageSource.UI, external_id
            )[1]
        uow.commit()
    return stored


class InboxResumer(threading.Thread):
    """Resumes a paused flow run once every number it asks for has a code in the inbox.

    Give it the flow run's id: `prefect.runtime.flow_run.id` is a context variable, empty in a
    new thread (prefect-notes §1). Until the run is paused, and after a person resumed it, the
    resume is refused (`NotPausedError`) and the thread keeps looking until it is stopped.
    """

    def __init__(
        self,
        flow_run_id: UUID,
        ledger_url: str | None,
        account: str,
        numbers: Sequence[str],
        interval_s: float = 1.0,
    ) -> None:
        super().__init__(name="inbox-resumer", daemon=True)
        self.flow_run_id = flow_run_id
        self.ledger = open_ledger_at(ledger_url)
        self.account = account
        self.numbers = list(numbers)
        self.interval_s = interval_s
        self.resumed = False
        self._stop_event = threading.Event()

    def _all_in(self) -> bool:
        with self.ledger.unit_of_work() as uow:
            have = numbers_with_codes(uow, self.account, self.numbers, datetime.now(UTC))
        return set(self.numbers) <= have

    def run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            try:
                if not self._all_in():
                    continue
                resume_flow_run(self.flow_run_id, run_input={})
            except NotPausedError:
                continue
            except FlowPauseTimeout:
                return
            except Exception as exc:  # a flaky database or API must not kill the watcher
                log.warning("inbox resumer: %s", type(exc).__name__)
                continue
            self.resumed = True
            return

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=10)
        self.ledger.close()
