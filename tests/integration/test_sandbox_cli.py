"""`callerid sandbox serve` as a real process: it serves, masks the token, and stops on a signal."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from callerid.cli.sandbox import parse_rate

CALLERID = Path(sys.executable).with_name("callerid")


def test_serve_answers_the_api_and_never_prints_the_token() -> None:
    token = "cli-secret-token-123"
    process = subprocess.Popen(
        [
            str(CALLERID),
            "sandbox",
            "serve",
            "--port",
            "0",
            "--auth-token",
            token,
            "--seed",
            "1",
            "--otp-digits",
            "6",
            "--rate",
            "2/60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    try:
        first = process.stdout.readline()
        assert first.startswith("Plivo sandbox listening on http://127.0.0.1:"), first
        url = first.rsplit(" ", 1)[1].strip()
        auth = ("MASANDBOXACCOUNT0001", token)
        base = f"{url}/v1/Account/MASANDBOXACCOUNT0001/VerifiedCallerId/"
        started = httpx.post(base, json={"phone_number": "+14155551234"}, auth=auth)
        assert started.status_code == 201
        [sent] = httpx.get(f"{url}/_sandbox/messages").json()["messages"]
        assert len(sent["otp"]) == 6
        assert httpx.get(base, auth=auth).status_code == 200
        assert httpx.get(base, auth=auth).status_code == 429  # --rate 2/60
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        output = process.stdout.read()  # not communicate(): it would skip what readline buffered
        process.stdout.close()
    assert process.returncode == 0, output
    assert token not in first + output
    assert "cl****" in first + output


def test_serve_takes_the_token_from_the_environment() -> None:
    token = "env-secret-token-456"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CALLERID_SANDBOX_AUTH_TOKEN": token}
    process = subprocess.Popen(
        [str(CALLERID), "sandbox", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    try:
        first = process.stdout.readline()
        assert first.startswith("Plivo sandbox listening on http://127.0.0.1:"), first
        url = first.rsplit(" ", 1)[1].strip()
        base = f"{url}/v1/Account/MASANDBOXACCOUNT0001/VerifiedCallerId/"
        assert httpx.get(base, auth=("MASANDBOXACCOUNT0001", token)).status_code == 200
        default = httpx.get(base, auth=("MASANDBOXACCOUNT0001", "sandbox-auth-token"))
        assert default.status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        output = process.stdout.read()
        process.stdout.close()
    assert process.returncode == 0, output
    assert token not in first + output


def _serve(*args: str) -> tuple[subprocess.Popen[str], str, str]:
    process = subprocess.Popen(
        [str(CALLERID), "sandbox", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    assert first.startswith("Plivo sandbox listening on http://127.0.0.1:"), first
    return process, first.rsplit(" ", 1)[1].strip(), first


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=10)
    assert process.stdout is not None
    output = process.stdout.read()
    process.stdout.close()
    return output


def test_subaccounts_exist_only_when_asked_for() -> None:
    """Issue 13: a sandbox started with its own main token has no well-known subaccounts."""
    sub, well_known = "SASANDBOXSUBACCT0001", "sandbox-subaccount-token-1"
    process, url, _ = _serve("--auth-token", "own-main-token")
    try:
        base = f"{url}/v1/Account/{sub}/VerifiedCallerId/"
        assert httpx.get(base, auth=(sub, well_known)).status_code == 401
    finally:
        output = _stop(process)
    assert "subaccounts: none" in output

    mine = "SAMYOWNSUBACCOUNT001"
    process, url, _ = _serve("--subaccount", f"{mine}=sub-token", "--default-subaccounts")
    try:
        own = f"{url}/v1/Account/{mine}/VerifiedCallerId/"
        assert httpx.get(own, auth=(mine, "sub-token")).status_code == 200
        base = f"{url}/v1/Account/{sub}/VerifiedCallerId/"
        assert httpx.get(base, auth=(sub, well_known)).status_code == 200
    finally:
        output = _stop(process)
    assert "sub-token" not in output


def test_a_port_in_use_is_one_clear_line_and_exit_code_2() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(CALLERID), "sandbox", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert f"127.0.0.1:{port}" in lines[0] and "in use" in lines[0]


@pytest.mark.parametrize(("text", "rate"), [("300/5", (300, 5.0)), ("10/0.5", (10, 0.5))])
def test_parse_rate(text: str, rate: tuple[int, float]) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "0/5", "10/0", "10/x"])
def test_parse_rate_refuses_nonsense(text: str) -> None:
    import typer

    with pytest.raises(typer.BadParameter):
        parse_rate(text)
