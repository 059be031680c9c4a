"""Runs: one row per `callerid run` / flow run, with its input file's hash and final counts."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callerid.ledger import run_counts
from callerid.ledger.errors import RunNotFoundError
from callerid.ledger.models import Run


class RunRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def start_run(
        self,
        run_id: str | None,
        account: str,
        *,
        input_path: str | None = None,
        input_sha256: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        now: datetime,
    ) -> Run:
        """Record a run (`run_id=None`: a new uuid4).

        Starting a run id that exists (a retried flow run) is not an error: the run is marked
        running again and keeps its first start time; given inputs and parameters replace the old.
        """
        run = self.session.get(Run, run_id) if run_id else None
        if run is None:
            run = Run(
                id=run_id or str(uuid.uuid4()),
                account=account,
                input_path=input_path,
                input_sha256=input_sha256,
                parameters=dict(parameters or {}),
                counts={},
                started_at=now,
                finished_at=None,
            )
            self.session.add(run)
        else:
            # Registration rebuilds its membership and counts (run_counts.py) from the ledger.
            run_counts.clear(self.session, run.id)
            run.finished_at = None
            if input_path is not None:
                run.input_path = input_path
            if input_sha256 is not None:
                run.input_sha256 = input_sha256
            if parameters is not None:
                run.parameters = dict(parameters)
        self.session.flush()
        return run

    def finish_run(self, run_id: str, counts: Mapping[str, int], now: datetime) -> Run:
        run = self.get(run_id)
        run.counts = dict(counts)
        run.finished_at = now
        # Its numbers' later moves (another run's) no longer count for it; its counts stay.
        run_counts.forget_members(self.session, run_id)
        run_counts.compact(self.session, run_id)
        self.session.flush()
        return run

    def status_counts(self, run_id: str) -> dict[str, int]:
        """How many of the run's numbers are in each status (statuses with none left out).

        Reads a bounded number of rows whatever the run's size; folds them when they pile up
        (a write: on SQLite it waits for the write lock). Commit the unit of work after."""
        counts, rows = run_counts.read(self.session, run_id)
        if rows > run_counts.COMPACT_ABOVE:
            run_counts.compact(self.session, run_id)
        return counts

    def get(self, run_id: str) -> Run:
        run = self.session.get(Run, run_id)
        if run is None:
            raise RunNotFoundError(run_id)
        return run

    def latest(self, account: str | None = None, limit: int = 10) -> list[Run]:
        """Most recent first."""
        query = select(Run).order_by(Run.started_at.desc(), Run.id).limit(limit)
        if account is not None:
            query = query.where(Run.account == account)
        return list(self.session.execute(query).scalars())
