"""`callerid run` against a real `prefect server` (PREFECT_API_URL set), the real CLI in a
subprocess on a fresh HOME: what the terminal says and what the UI's API holds.

* a file of 20 numbers and 3 bad rows: the UI link printed at start, the flow run named
  `numbers.csv · 20 numbers`, INFO logs (batches with counts) in the run's logs, the failures
  artifact listing the 3 rejected rows with their reasons, the same elapsed time on the console
  as in summary.md; a rerun says "20 already verified, nothing sent";
* wrong token / a closed PLIVO_API_URL: one line with the masked account or the URL and the
  cause, exit 1, the traceback only in run.log, no number registered.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from callerid.ledger import Number, open_ledger
from callerid.sandbox import DEFAULT_AUTH_ID, SandboxServer
from tests.cli_support import SAMPLE, Done, callerid, fresh_env
from tests.e2e.helpers import valid_numbers, write_csv
from tests.e2e.prefect_server import PrefectServer, prefect_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server() -> Iterator[PrefectServer]:
    with prefect_server() as started:
        yield started


def _env(server: PrefectServer, home: Path, **extra: str) -> dict[str, str]:
    return fresh_env(home, PREFECT_API_URL=server.api_url, **extra)


def _post(server: PrefectServer, path: str, body: dict[str, Any]) -> Any:
    response = httpx.post(f"{server.api_url}{path}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def _run_folder(done: Done, work: Path) -> Path:
    found = re.search(r"run id ([0-9a-f-]{36})", done.out)
    assert found, done.out
    return work / "out" / "runs" / found.group(1)


# Numbers that get their code by SMS on the sandbox (US numbers: fixed line or mobile), and rows
# ingest rejects. (data/sample.csv has fixed lines abroad: their codes come by voice call, heard
# only by a person, so a run of it waits out their windows.)
MOBILE = 20
BAD = ("not a number", "12", "+1 415 555 2671 ext. 9")


def _numbers_csv(path: Path) -> Path:
    rows = [{"phone_number": n, "alias": f"desk {i}"} for i, n in enumerate(valid_numbers(MOBILE))]
    rows += [{"phone_number": bad, "alias": ""} for bad in BAD]
    return write_csv(path, rows)


def test_the_ui_sees_the_named_run_its_info_logs_and_the_rejects_and_a_rerun_says_so(
    server: PrefectServer, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    env = _env(server, tmp_path / "home")
    numbers = _numbers_csv(work / "numbers.csv")
    # codes come 2 s after each initiate: after its batch is recorded, even on a busy machine
    first = callerid("run", str(numbers), "--reply-delay", "2", env=env, cwd=work)
    assert first.code == 0, first.out + first.err
    assert "Traceback" not in first.out + first.err
    link = re.search(r"Prefect UI: (\S+/runs/flow-run/([0-9a-f-]{36}))", first.out)
    assert link and link.group(1).startswith(server.url), first.out
    flow_run_id = link.group(2)

    flow_run = httpx.get(f"{server.api_url}/flow_runs/{flow_run_id}", timeout=30).json()
    assert flow_run["name"] == f"numbers.csv · {MOBILE} numbers"

    logs = _post(server, "/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run_id]}}})
    info = [log["message"] for log in logs if log["level"] == 20]
    assert any(re.match(r"\d+ initiations: ", m) for m in info), info
    assert any(re.match(r"\d+ codes submitted: verified \d+", m) for m in info), info
    # the terminal stayed calm: no INFO chatter of Prefect's there
    assert "codes submitted" not in first.out + first.err

    artifacts = _post(
        server,
        "/artifacts/filter",
        {
            "artifacts": {
                "key": {"any_": ["bulk-verify-failures"]},
                "flow_run_id": {"any_": [flow_run_id]},
            }
        },
    )
    assert len(artifacts) == 1
    rows = artifacts[0]["data"]
    rows = rows if isinstance(rows, list) else json.loads(rows)
    rejected = [r for r in rows if r["status"] == "rejected"]
    assert len(rejected) == len(BAD) and all(r["reason"] and r["line"] for r in rejected), rows
    assert {r["input"] for r in rejected} == set(BAD)

    folder = _run_folder(first, work)
    summary = (folder / "summary.md").read_text(encoding="utf-8")
    elapsed = re.search(r"Elapsed: ([\d.]+) s", summary)
    took = re.search(r"took ([\d.]+) s from reading the file", first.out)
    assert elapsed and took and elapsed.group(1) == took.group(1), (summary, first.out)

    second = callerid("run", str(numbers), env=env, cwd=work)
    assert second.code == 0, second.out + second.err
    assert f"{MOBILE} already verified, nothing sent" in second.out


def _ledger_numbers(work: Path) -> int:
    from sqlalchemy import func, select

    path = work / "out" / "ledger.sqlite3"
    if not path.exists():
        return 0
    with open_ledger(f"sqlite:///{path}") as ledger, ledger.unit_of_work() as uow:
        return int(uow.session.execute(select(func.count()).select_from(Number)).scalar_one())


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("problem", ["wrong-token", "closed-port"])
def test_wrong_credentials_or_url_are_one_line_and_nothing_is_registered(
    server: PrefectServer, tmp_path: Path, problem: str
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    with SandboxServer() as sandbox:
        url = sandbox.url if problem == "wrong-token" else f"http://127.0.0.1:{_closed_port()}"
        env = _env(
            server,
            tmp_path / "home",
            PLIVO_AUTH_ID=DEFAULT_AUTH_ID,
            PLIVO_AUTH_TOKEN="not-the-token",
            PLIVO_API_URL=url,
        )
        setup = callerid("setup-prefect", env=env, cwd=work)  # the account's shared rate bucket
        assert setup.code == 0, setup.out + setup.err
        done = callerid("run", str(SAMPLE), env=env, cwd=work)
    said = done.out + done.err
    assert done.code == 1, said
    assert "Traceback" not in said and "not-the-token" not in said
    failed = [line for line in done.lines if " failed: " in line]
    assert len(failed) == 1, done.lines
    if problem == "wrong-token":
        expected = f"Plivo refused the credentials for account MA**** at {url}, HTTP 401"
    else:
        expected = f"cannot reach Plivo at {url}: Connection refused"
    assert failed[0].endswith(expected), failed
    folder = _run_folder(done, work)
    assert "Traceback (most recent call last)" in (folder / "run.log").read_text(encoding="utf-8")
    assert _ledger_numbers(work) == 0  # checked before any number was registered
    # recorded as failed with that reason: summary.md, the summary artifact, the run's state
    assert expected in (folder / "summary.md").read_text(encoding="utf-8")
    flow_run_id = json.loads((folder / "flow-run.json").read_text(encoding="utf-8"))["id"]
    flow_run = httpx.get(f"{server.api_url}/flow_runs/{flow_run_id}", timeout=30).json()
    assert flow_run["state"]["type"] == "FAILED"
    artifacts = _post(
        server,
        "/artifacts/filter",
        {
            "artifacts": {
                "key": {"any_": ["bulk-verify-summary"]},
                "flow_run_id": {"any_": [flow_run_id]},
            }
        },
    )
    assert len(artifacts) == 1 and expected in str(artifacts[0]["data"])
