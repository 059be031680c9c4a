"""`callerid run` on the embedded default (sandbox in-process, SQLite, Prefect's temporary server),
the real command in a subprocess whose output is a file (not a TTY): when the run starts waiting
for people, the terminal says so in one line, once per wave, with the number of owners emailed.

One landline (a fixed line: `--channel auto` calls it) with an owner; the mail goes to an aiosmtpd
server in this test. The line must be on the terminal before the owner types the code: the run
cannot end until then, so it was printed while the run waited. `--notify` names a block nobody
saved: the failure is logged and the run still ends well.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.cli_support import CALLERID, fresh_env
from tests.e2e.helpers import write_csv
from tests.smtp_server import smtp_server

pytestmark = pytest.mark.slow
LANDLINE = "+442071838750"  # phonenumbers: FIXED_LINE
OWNER = "ana@example.com"
LINE = (
    "Waiting for people (wave 1): 1 number (1 voice call) needs a code typed; 1 of 1 owner emailed"
)


def _until(
    found: Callable[[], object], what: str, process: subprocess.Popen[bytes], out: Path
) -> object:
    deadline = time.monotonic() + 420  # a fresh PREFECT_HOME migrates first (prefect-notes §0.6)
    while time.monotonic() < deadline:
        got = found()
        if got:
            return got
        if process.poll() is not None:
            raise AssertionError(f"{what}: the run ended\n{out.read_text()[-3000:]}")
        time.sleep(0.5)
    raise AssertionError(f"{what}: timed out\n{out.read_text()[-3000:]}")


def test_the_terminal_says_when_the_run_waits_for_people(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    csv_path = write_csv(work / "desk.csv", [{"phone_number": LANDLINE, "owner": OWNER}])
    out = tmp_path / "terminal.txt"
    with smtp_server() as smtp:
        env = fresh_env(
            tmp_path / "home",
            CALLERID_DATABASE_URL=f"sqlite:///{work / 'ledger.sqlite3'}",
            CALLERID_OUTPUT_DIR=str(work / "out"),
            CALLERID_SANDBOX_CALLS="hold",  # the call's code is only heard: the owner types it
            CALLERID_SMTP_URL=smtp.url,
        )
        with out.open("wb") as sink:
            process = subprocess.Popen(
                # A notification block nobody saved: told of nothing, and the run goes on.
                [CALLERID, "run", str(csv_path), "--notify", "custom-webhook/nobody-saved-this"],
                env=env,
                cwd=work,
                stdout=sink,
                stderr=sink,
            )
        try:
            _until(lambda: LINE in out.read_text(), "the waiting line", process, out)
            mail = _until(lambda: smtp.handler.to(OWNER), "the owner's mail", process, out)
            page = re.search(r"(http://\S+/codes/\S+)", mail[0].body)  # type: ignore[index]
            assert page, mail
            (run_log,) = (work / "out" / "runs").glob("*/run.log")
            sandbox = re.search(r"local sandbox at (http://[0-9.]+:[0-9]+)", run_log.read_text())
            assert sandbox, run_log.read_text()[-3000:]
            heard = httpx.get(
                f"{sandbox.group(1)}/_sandbox/messages",
                params={"phone_number": LANDLINE},
                timeout=30,
            ).json()["messages"][-1]["otp"]
            with httpx.Client(timeout=30) as owner:
                form = owner.get(page.group(1)).text
                csrf = re.search(r'name="csrf" value="([^"]+)"', form)
                assert csrf, form
                field = "code_" + LANDLINE.lstrip("+")
                sent = owner.post(page.group(1), data={"csrf": csrf.group(1), field: heard})
                assert sent.status_code == 303, sent.text
            assert process.wait(timeout=240) == 0, out.read_text()[-3000:]
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    said = out.read_text()
    (line,) = [x for x in said.splitlines() if x.startswith("Waiting for people")]  # once
    assert line.startswith(LINE)
    assert "form:" not in line  # the temporary server has no UI to link to
    base = page.group(1).split("/codes/")[0]
    assert f"their links open the code page at {base}" in line
    assert page.group(1) not in said  # the owner's link is theirs alone
    assert heard not in said
    assert "1 verified: 1 by this run" in said
    run_log = next((work / "out" / "runs").glob("*/run.log")).read_text()
    assert "could not notify through custom-webhook/nobody-saved-this" in run_log
