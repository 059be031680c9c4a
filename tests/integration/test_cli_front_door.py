"""`callerid` as a new user meets it: the real command in a subprocess, a fresh HOME, no Plivo,
no Prefect server. Bad input and half-set credentials are one line and exit 2 before anything
starts; a file of nothing but rejects, a code nobody waits for and an unplanned crash each say
what happened in a line; `status` fits 80 columns; `--help` imports none of the heavy libraries.
"""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from callerid.ledger import NumberStatus, open_ledger
from tests.cli_support import SAMPLE, callerid, fresh_env
from tests.ledger_support import drive, register

HEAVY = ("prefect", "pandas", "sqlalchemy")


def _imported(stderr: str) -> set[str]:
    """Top-level packages named in a `python -X importtime` log."""
    found = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            found.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return found


def _said(stderr: str, stdout: str) -> list[str]:
    return [
        line
        for line in (stdout + stderr).splitlines()
        if line.strip() and not line.startswith("import time:")
    ]


@pytest.fixture
def user(tmp_path: Path) -> tuple[dict[str, str], Path]:
    work = tmp_path / "work"
    work.mkdir()
    return fresh_env(tmp_path / "home"), work


BINARY = bytes(range(256)) * 8


@pytest.mark.parametrize(
    ("name", "content", "extra", "expected"),
    [
        ("empty.csv", b"", (), "the file is empty"),
        ("binary.csv", BINARY, (), "empty.csv"),
        ("names.csv", b"name,city\nAda,London\n", (), "no phone number column"),
        ("sample", None, ("--region", "XX"), "default region 'XX' is not a supported"),
        ("sample", None, ("--subaccount", "SA123"), "subaccount 'SA123' is not a Plivo"),
    ],
    ids=["empty", "binary", "no-phone-column", "region-XX", "subaccount-SA123"],
)
def test_bad_input_is_one_line_and_exit_2_before_anything_starts(
    user: tuple[dict[str, str], Path],
    name: str,
    content: bytes | None,
    extra: tuple[str, ...],
    expected: str,
) -> None:
    env, work = user
    if content is None:
        path = SAMPLE
    else:
        path = work / name
        path.write_bytes(content)
    done = callerid("run", str(path), *extra, env=env, cwd=work, python_flags=("-X", "importtime"))
    said = _said(done.err, done.out)
    assert done.code == 2, said
    assert len(said) == 1, said
    assert said[0].startswith("error: ")
    if name != "binary.csv":  # what ingest says of a binary file is ingest's to word
        assert expected in said[0]
    # the same words `callerid check` uses
    check = callerid("check", str(path), *_check_options(extra), env=env, cwd=work)
    assert check.code == 2 and check.err.strip() == said[0]
    # nothing started: no Prefect, no database library, no ledger, no run folder
    assert not _imported(done.err) & {"prefect", "sqlalchemy"}, _imported(done.err)
    assert not (work / "out").exists()


def _check_options(extra: tuple[str, ...]) -> tuple[str, ...]:
    return tuple("--default-region" if a == "--region" else a for a in extra)


@pytest.mark.parametrize(
    ("variable", "missing"),
    [("PLIVO_AUTH_ID", "PLIVO_AUTH_TOKEN"), ("PLIVO_AUTH_TOKEN", "PLIVO_AUTH_ID")],
)
def test_half_a_pair_of_credentials_is_exit_2_not_the_sandbox(
    user: tuple[dict[str, str], Path], variable: str, missing: str
) -> None:
    env, work = user
    env[variable] = "MAXXXXXXXXXXXXXXXXXX" if variable == "PLIVO_AUTH_ID" else "not-a-token"
    done = callerid("run", str(SAMPLE), env=env, cwd=work)
    assert done.code == 2, done.lines
    assert len(done.lines) == 1, done.lines
    assert f"{missing} is not set ({variable} is)" in done.lines[0]
    assert "sandbox" not in done.out.lower() or "neither" in done.lines[0]
    assert not (work / "out").exists()


def test_a_file_of_nothing_but_rejects_is_exit_1_with_the_count(
    user: tuple[dict[str, str], Path],
) -> None:
    env, work = user
    path = work / "bad.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["phone_number", "name"])
        writer.writerows([f"not a number {i}", f"n{i}"] for i in range(10_000))
    done = callerid("run", str(path), env=env, cwd=work, python_flags=("-X", "importtime"))
    said = _said(done.err, done.out)
    assert done.code == 1, said
    assert len(said) == 1 and said[0].startswith("no row could be verified: 10000 rejected (see ")
    rejects = Path(re.search(r"\(see (.+rejects\.csv)\)", said[0]).group(1))  # type: ignore[union-attr]
    with (work / rejects if not rejects.is_absolute() else rejects).open(encoding="utf-8") as fh:
        assert sum(1 for _ in csv.DictReader(fh)) == 10_000
    assert "prefect" not in _imported(done.err)


def test_otp_submit_for_a_number_nothing_waits_for_is_exit_1_and_still_stored(
    user: tuple[dict[str, str], Path],
) -> None:
    env, work = user
    done = callerid("otp", "submit", "+14155550123", "123456", env=env, cwd=work)
    assert done.code == 1, done.lines
    text = " ".join(done.lines)
    assert "no live verification waits for +14155550123" in text
    assert "123456" not in text  # the code is masked
    listed = callerid("inbox", "list", env=env, cwd=work)
    assert listed.code == 0 and "+14155550123" in listed.out and "123456" not in listed.out


def test_otp_submit_for_a_number_a_run_waits_for_says_recorded(
    user: tuple[dict[str, str], Path],
) -> None:
    env, work = user
    url = f"sqlite:///{work / 'ledger.sqlite3'}"
    env["CALLERID_DATABASE_URL"] = url
    from callerid.sandbox.state import DEFAULT_AUTH_ID

    with open_ledger(url) as ledger:
        register(ledger, 1, account=DEFAULT_AUTH_ID)
        with ledger.unit_of_work() as uow:
            row = uow.numbers.get(DEFAULT_AUTH_ID, "+14155550000")
            assert row is not None
            now = datetime.now(UTC)
            uow.numbers.transition(row, NumberStatus.INITIATING, reason="test", run_id="r", now=now)
            uow.numbers.transition(
                row,
                NumberStatus.INITIATED,
                reason="test",
                run_id="r",
                now=now,
                verification_uuid="u-1",
                initiated_at=now,
                expires_at=now + timedelta(minutes=15),
            )
            uow.commit()
    done = callerid("otp", "submit", "+14155550000", "1234", env=env, cwd=work)
    assert done.code == 0, done.lines
    assert "recorded for +14155550000" in done.out


def test_status_is_readable_at_80_columns(user: tuple[dict[str, str], Path]) -> None:
    env, work = user
    url = f"sqlite:///{work / 'ledger.sqlite3'}"
    with open_ledger(url) as ledger:
        register(ledger, 3)
        register(ledger, 2, account="MAOTHERACCOUNT000002")
        drive(ledger, "+14155550000", NumberStatus.ALREADY_VERIFIED)
        with ledger.unit_of_work() as uow:
            now = datetime.now(UTC)
            uow.runs.start_run("0f6c1a2b-run-of-the-status-test", "MAOTHERACCOUNT000002", now=now)
            uow.runs.finish_run(
                "0f6c1a2b-run-of-the-status-test",
                {"verified": 40, "already_verified": 5, "rejected": 11, "failed": 2},
                now,
            )
            uow.commit()
    env["COLUMNS"] = "80"
    done = callerid("status", "--url", url, env=env, cwd=work)
    assert done.code == 0, done.lines
    lines = [line for line in done.out.splitlines() if not line.startswith("ledger: ")]
    assert max(len(line) for line in lines) <= 80, done.out
    assert "…" not in done.out, done.out
    for status in NumberStatus:
        assert re.search(rf"│ {status.value} +│", done.out), (status, done.out)
    header = next(line for line in lines if "status" in line and "MAOTHERACCOUNT000002" in line)
    assert "MAACCOUNT000000000001" in header
    queued = next(line for line in lines if re.search(r"│ queued ", line))
    assert [c.strip() for c in queued.split("│")[1:-1]] == ["queued", "2", "2"]
    run_line = next(line for line in lines if "0f6c1a2b" in line)
    assert "MAOTHERACCOUNT000002" in run_line
    assert "already_verified 5, failed 2, rejected 11, verified 40" in done.out


def test_help_imports_neither_prefect_nor_pandas_nor_sqlalchemy(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from callerid.cli import main\n"
        "sys.argv = ['callerid', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", script],
        env=fresh_env(tmp_path / "home"),
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert "HEAVY []" in done.stdout, done.stdout[-500:]
    assert "run" in done.stdout and "status" in done.stdout


def test_an_unplanned_error_is_one_line_and_a_log_file_unless_debug(
    user: tuple[dict[str, str], Path],
) -> None:
    env, work = user
    done = callerid("inbox", "list", "--database-url", "nosuchdialect://x", env=env, cwd=work)
    assert done.code == 1
    assert "Traceback" not in done.out + done.err
    assert len(done.lines) == 2, done.lines
    assert done.lines[0].startswith("error: NoSuchModuleError: ")
    log = Path(done.lines[1].split("details in ", 1)[1].strip())
    assert log.is_file() and log.is_relative_to(work / "out" / "logs")
    assert "Traceback (most recent call last)" in log.read_text(encoding="utf-8")

    debug = callerid(
        "--debug", "inbox", "list", "--database-url", "nosuchdialect://x", env=env, cwd=work
    )
    assert debug.code == 1 and "Traceback (most recent call last)" in debug.err


def test_a_crash_while_storing_a_code_never_writes_the_code(
    user: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    """A database error quotes its statement's values unless told not to, and the crash log
    wrote the command line: `otp submit NUMBER CODE` put the code on the terminal and on disk."""
    import sqlalchemy as sa

    env, work = user
    url = f"sqlite:///{tmp_path / 'broken.sqlite3'}"
    with open_ledger(url) as ledger, ledger.engine.begin() as db:
        db.execute(sa.text("ALTER TABLE inbox_messages RENAME TO inbox_gone"))
    done = callerid(
        "otp", "submit", "+14155550123", "482193", "--database-url", url, env=env, cwd=work
    )
    assert done.code == 1, done.out + done.err
    assert "482193" not in done.out + done.err
    log = Path(done.lines[-1].split("details in ", 1)[1].strip())
    text = log.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text and "inbox_messages" in text
    assert "482193" not in text and "+14155550123" in text


def test_the_crash_log_masks_codes_tokens_and_passwords_on_the_command_line() -> None:
    from callerid.cli.crash import safe_argv

    argv = [
        "otp", "submit", "+14155550123", "482193",
        "--database-url", "postgresql://ops:hunter2@db/ledger",
        "--auth-token", "s3cr3t-token", "--link-secret=abcdefabcdefabcdef",
    ]  # fmt: skip
    said = " ".join(safe_argv(argv))
    assert "+14155550123" in said and "postgresql://ops:****@db/ledger" in said
    for secret in ("482193", "hunter2", "s3cr3t-token", "abcdefabcdefabcdef"):
        assert secret not in said
