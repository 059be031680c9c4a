"""The operator's side of issue 12 against a real `prefect server start`: a custom webhook
notification block (pointed at a receiver in this test) is told about the wave, with a UI link that
works, and about the run's end; `callerid setup-prefect --notify` creates the failure automation.

`callerid run` runs as its own process on the embedded default (sandbox in-process, no Plivo
credentials) against the server; this test plays the one owner through the code page over HTTP.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import write_csv
from tests.e2e.prefect_server import PrefectServer, prefect_server
from tests.smtp_server import SmtpServer, smtp_server

pytestmark = pytest.mark.slow
LANDLINE = "+442071838750"
BLOCK = "custom-webhook/ops"


class Receiver(ThreadingHTTPServer):
    """Collects the JSON bodies the notification block posts."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                receiver.bodies.append(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def texts(self) -> list[str]:
        return [str(b.get("text", "")) for b in list(self.bodies)]


@pytest.fixture(scope="module")
def server() -> Iterator[PrefectServer]:
    with prefect_server() as started:
        yield started


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver()
    thread = threading.Thread(target=started.serve_forever, daemon=True)
    thread.start()
    try:
        yield started
    finally:
        started.shutdown()
        started.server_close()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as started:
        yield started


def _python(server: PrefectServer, code: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", code], env=server.env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _save_block(server: PrefectServer, url: str) -> None:
    _python(
        server,
        "from prefect.blocks.notifications import CustomWebhookNotificationBlock as B\n"
        f"B(name='ops', url={url!r}, json_data={{'text': '{{{{subject}}}}|{{{{body}}}}'}})"
        ".save('ops', overwrite=True)\n",
    )


def _callerid(server: PrefectServer, tmp_path: Path, *args: str, **env: str) -> list[str]:
    base = {k: v for k, v in server.env().items() if not k.startswith(("PLIVO_", "CALLERID_"))}
    base.update(
        CALLERID_DATABASE_URL=f"sqlite:///{tmp_path / 'ledger.sqlite3'}",
        CALLERID_OUTPUT_DIR=str(tmp_path / "out"),
        CALLERID_SANDBOX_CALLS="hold",  # a call's code is only heard: the owner types it
        **env,
    )
    callerid = str(Path(sys.executable).with_name("callerid"))
    return [callerid, *args], base  # type: ignore[return-value]


def _ui_shows(url: str, run_name: str, tmp_path: Path) -> None:
    """The link opens the run's page in the Prefect UI (a real browser: the UI is an app)."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(url)
            expect(page.get_by_text(run_name).first).to_be_visible(timeout=60_000)
        except BaseException:
            page.screenshot(path=str(tmp_path / "ui-link-failure.png"), full_page=True)
            raise
        finally:
            browser.close()


def _wait(predicate: Any, what: str, process: subprocess.Popen[str] | None, log: Path) -> Any:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: the run ended\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    raise AssertionError(f"{what}: timed out\n{log.read_text()[-3000:]}")


@pytest.mark.browser
def test_the_block_hears_of_the_wave_and_the_end_with_a_working_ui_link(
    server: PrefectServer, receiver: Receiver, smtp: SmtpServer, tmp_path: Path
) -> None:
    _save_block(server, receiver.url)
    rows = [{"phone_number": LANDLINE, "channel": "call", "owner": "ana@example.com"}]
    csv_path = write_csv(tmp_path / "one.csv", rows)
    command, env = _callerid(
        server,
        tmp_path,
        "run",
        str(csv_path),
        "--notify",
        BLOCK,
        "--reply-delay",
        "3600",  # nobody texts the code back: the owner types it
        CALLERID_SMTP_URL=smtp.url,
    )
    log = tmp_path / "run.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, text=True
        )
    try:
        wave = _wait(
            lambda: [t for t in receiver.texts() if "wait for a person" in t],
            "wave notification",
            process,
            log,
        )[0]
        assert "1 numbers wait for a person (1 owners emailed); form: " in wave
        link = re.search(r"form: (http://\S+)", wave)
        assert link and link.group(1).startswith(f"{server.url}/runs/flow-run/"), wave
        run_id = link.group(1).rsplit("/", 1)[1]
        run = httpx.get(f"{server.api_url}/flow_runs/{run_id}", timeout=30).json()
        assert run["id"] == run_id and run["state_type"] in ("RUNNING", "PAUSED")
        _ui_shows(link.group(1), run["name"], tmp_path)
        (run_log,) = (tmp_path / "out" / "runs").glob("*/run.log")
        assert "1 numbers wait for a person (1 of 1 owners emailed); form: " in run_log.read_text()
        # The terminal (a file here: not a TTY) says it too, with the same UI link.
        terminal = _wait(
            lambda: [x for x in log.read_text().splitlines() if "Waiting for people" in x],
            "the terminal's line",
            process,
            log,
        )
        assert terminal[0].startswith(
            "Waiting for people (wave 1): 1 number (1 voice call) needs a code typed; "
            f"1 of 1 owner emailed; form: {link.group(1)}"
        ), terminal

        # The owner types the code the call "spoke"; the run ends and says so.
        sandbox = re.search(r"local sandbox at (http://[0-9.]+:[0-9]+)", run_log.read_text())
        assert sandbox, run_log.read_text()[-3000:]
        mail = smtp.handler.wait_for(1)[0]
        page_url = re.search(r"(http://\S+/codes/\S+)", mail.body)
        assert page_url, mail.body
        heard = httpx.get(
            f"{sandbox.group(1)}/_sandbox/messages", params={"phone_number": LANDLINE}
        ).json()["messages"][-1]["otp"]
        with httpx.Client(timeout=30) as owner:
            page = owner.get(page_url.group(1)).text
            csrf = re.search(r'name="csrf" value="([^"]+)"', page)
            assert csrf, page
            field = "code_" + LANDLINE.lstrip("+")
            posted = owner.post(page_url.group(1), data={"csrf": csrf.group(1), field: heard})
            assert posted.status_code in (200, 303)
        assert process.wait(timeout=180) == 0, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
    said = [x for x in log.read_text().splitlines() if "Waiting for people" in x]
    assert len(said) == 1, said  # once per wave, not once per poll
    end = _wait(lambda: [t for t in receiver.texts() if "finished" in t], "end", None, log)[0]
    assert "verified 1" in end and "owners emailed 1" in end


def test_setup_prefect_notify_creates_the_failure_automation(
    server: PrefectServer, receiver: Receiver, tmp_path: Path
) -> None:
    _save_block(server, receiver.url)
    command, env = _callerid(server, tmp_path, "setup-prefect", "--notify", BLOCK)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr  # idempotent: replaced, not doubled
    found = httpx.post(f"{server.api_url}/automations/filter", json={}, timeout=30).json()
    ours = [a for a in found if a["name"] == "bulk-verify failed or crashed"]
    assert len(ours) == 1
    (automation,) = ours
    assert set(automation["trigger"]["expect"]) == {
        "prefect.flow-run.Failed",
        "prefect.flow-run.Crashed",
    }
    assert automation["trigger"]["match_related"]["prefect.resource.name"] == "bulk-verify"
    (action,) = automation["actions"]
    assert action["type"] == "send-notification"
    blocks = httpx.post(f"{server.api_url}/block_documents/filter", json={}, timeout=30).json()
    ops = [b for b in blocks if b["name"] == "ops"]
    assert ops and action["block_document_id"] == ops[0]["id"]
