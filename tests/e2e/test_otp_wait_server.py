"""The person's path against a real `prefect server start`: the flow pauses once for the batch
with a form, and goes on to verify the numbers when their codes arrive (typed at the CLI, so the
inbox resumer resumes the run by itself) or are typed into the Prefect UI form (browser test)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from callerid.cli import app
from callerid.sandbox import DEFAULT_AUTH_ID, Behaviour, SandboxServer
from tests.e2e.prefect_server import PrefectServer, paused_runs, prefect_server

DRIVER = Path(__file__).with_name("otp_wait_driver.py")
NUMBERS = ["+14155550123", "+14155550124"]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server() -> Iterator[PrefectServer]:
    with prefect_server() as started:
        yield started


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(seed=11) as started:
        for number in NUMBERS:  # voice calls: the person hears the code, nothing is texted
            started.network.set_behaviour(number, Behaviour.SILENT)
        yield started


class Driver:
    """The parent flow in its own process, running against the real server."""

    def __init__(
        self,
        server: PrefectServer,
        sandbox: SandboxServer,
        tmp_path: Path,
        pause_timeout_s: int = 600,
    ) -> None:
        self.ledger_url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
        self.result = tmp_path / "result.json"
        self.log = tmp_path / "driver.log"
        args = [str(DRIVER), sandbox.url, self.ledger_url, str(self.result), *NUMBERS]
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**server.env(), "CALLERID_TEST_PAUSE_TIMEOUT_S": str(pause_timeout_s)},
            )

    def paused_run_id(self, server: PrefectServer, timeout_s: float = 180) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            runs = paused_runs(server, "collect-otps-from-person")
            if runs:
                return str(runs[0]["id"])
            time.sleep(0.5)
        raise AssertionError(f"no paused run:\n{self.log.read_text()[-3000:]}")

    def finish(self, timeout_s: float = 180) -> dict[str, object]:
        try:
            code = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"driver hung:\n{self.log.read_text()[-3000:]}") from None
        assert code == 0, self.log.read_text()[-3000:]
        return dict(json.loads(self.result.read_text()))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def heard(sandbox: SandboxServer, number: str) -> str:
    """The code the person heard on the call (the sandbox's record of what it sent)."""
    return sandbox.backend.messages(number)[-1].otp


def test_codes_from_the_cli_resume_the_paused_run(
    server: PrefectServer, sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = Driver(server, sandbox, tmp_path)
    try:
        driver.paused_run_id(server)
        monkeypatch.setenv("CALLERID_DATABASE_URL", driver.ledger_url)
        monkeypatch.delenv("PLIVO_AUTH_ID", raising=False)
        runner = CliRunner()
        first = runner.invoke(app, ["otp", "submit", NUMBERS[0], heard(sandbox, NUMBERS[0])])
        assert first.exit_code == 0, first.output
        time.sleep(3)  # one code is not all of them: the run must still be paused
        assert paused_runs(server, "collect-otps-from-person")
        second = runner.invoke(app, ["otp", "submit", NUMBERS[1], heard(sandbox, NUMBERS[1])])
        assert second.exit_code == 0, second.output
        result = driver.finish()
    finally:
        driver.stop()
    assert result["collected"] == {"asked": NUMBERS, "typed": [], "resumed_by": "inbox"}
    assert result["verified"] == NUMBERS
    for number in NUMBERS:
        assert sandbox.backend.get(DEFAULT_AUTH_ID, number).phone_number == number


def test_a_pause_nobody_answers_fails_only_the_subflow(
    server: PrefectServer, sandbox: SandboxServer, tmp_path: Path
) -> None:
    driver = Driver(server, sandbox, tmp_path, pause_timeout_s=4)
    try:
        result = driver.finish()
    finally:
        driver.stop()
    assert result == {"collected": {"state": "Failed"}, "verified": []}
    assert not paused_runs(server, "collect-otps-from-person")


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.mark.browser
def test_a_person_types_the_codes_into_the_prefect_ui_form(
    server: PrefectServer, sandbox: SandboxServer, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    from callerid.inbox.form import pretty

    driver = Driver(server, sandbox, tmp_path)
    try:
        run_id = driver.paused_run_id(server)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            try:
                page.goto(f"{server.url}/runs/flow-run/{run_id}")
                page.get_by_role("button", name="Resume").click()
                dialog = page.get_by_role("dialog")
                intro = dialog.get_by_text("Enter the verification codes")
                expect(intro).to_be_visible(timeout=60_000)
                # one field per number, found by its title (the number, formatted)
                first, second = (
                    dialog.locator(".schema-form-property", has_text=pretty(n)).locator("textarea")
                    for n in NUMBERS
                )
                # a malformed code is refused by the server against the form's schema
                first.fill("12ab")
                dialog.get_by_role("button", name="Submit").click()
                refusal = page.get_by_text("does not match").first
                expect(refusal).to_be_visible(timeout=30_000)
                assert paused_runs(server, "collect-otps-from-person")
                first.fill(heard(sandbox, NUMBERS[0]))
                second.fill(heard(sandbox, NUMBERS[1]))
                dialog.get_by_role("button", name="Submit").click()
                result = driver.finish()
            except BaseException:
                page.screenshot(path=str(tmp_path / "prefect-ui-failure.png"), full_page=True)
                raise
            finally:
                browser.close()
    finally:
        driver.stop()
    assert result["collected"] == {"asked": NUMBERS, "typed": NUMBERS, "resumed_by": "person"}
    assert result["verified"] == NUMBERS
    for number in NUMBERS:
        assert sandbox.backend.get(DEFAULT_AUTH_ID, number).phone_number == number
