"""The sandbox account in a state file (issue 11): one account over time, shared by processes.

Backends over one file see each other's changes (caller IDs, subaccounts), a restarted backend
finds the account as it was left, processes changing the file at once lose nothing and never
corrupt it (lock + append + atomic snapshot replace), and a torn journal line is survived.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from callerid.sandbox import DEFAULT_AUTH_ID, DEFAULT_SUBACCOUNTS, SandboxBackend
from callerid.sandbox.errors import NotFoundError
from callerid.sandbox.persistence import StateFileError
from tests.e2e.helpers import valid_numbers

SUB = "SASANDBOXSUBACCT0001"


def _backend(path: Path, **kw: object) -> SandboxBackend:
    return SandboxBackend(state_file=path, subaccounts=DEFAULT_SUBACCOUNTS, **kw)  # type: ignore[arg-type]


def _verify(backend: SandboxBackend, number: str, alias: str = "") -> None:
    started = backend.initiate(DEFAULT_AUTH_ID, number, alias=alias)
    uuid = started.verification_uuid
    backend.complete(DEFAULT_AUTH_ID, uuid, backend.otp_for(uuid))


def _listed(backend: SandboxBackend) -> dict[str, str]:
    found: dict[str, str] = {}
    offset = 0
    while True:
        page = backend.list(DEFAULT_AUTH_ID, limit=20, offset=offset)
        found.update({c.phone_number: c.alias for c in page.objects})
        offset += 20
        if offset >= page.total_count:
            return found


def test_two_backends_on_one_file_are_one_account(tmp_path: Path) -> None:
    path = tmp_path / "sandbox-account.json"
    a, b = _backend(path), _backend(path)
    one, two = valid_numbers(2)
    _verify(a, one, alias="front desk")
    assert b.get(DEFAULT_AUTH_ID, one).alias == "front desk"
    b.update(DEFAULT_AUTH_ID, one, alias="renamed", subaccount=SUB)
    assert (a.get(DEFAULT_AUTH_ID, one).alias, a.get(SUB, one).subaccount) == ("renamed", SUB)
    _verify(b, two)
    with pytest.raises(Exception, match="already verified"):
        a.initiate(DEFAULT_AUTH_ID, two)  # a sees b's caller ID before it would send an OTP
    a.delete(DEFAULT_AUTH_ID, two)
    with pytest.raises(NotFoundError):
        b.get(DEFAULT_AUTH_ID, two)
    b.add_subaccount("SAANOTHERSUBACCOUNT1", "tok")
    a.authenticate("SAANOTHERSUBACCOUNT1", "SAANOTHERSUBACCOUNT1", "tok")

    restarted = _backend(path)  # a later process: the account as it was left
    assert _listed(restarted) == {one: "renamed"}
    assert oct(path.stat().st_mode & 0o777) == "0o600"  # subaccount tokens inside


def test_the_file_belongs_to_one_account(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    _backend(path)
    with pytest.raises(StateFileError, match="holds account MASANDBOXACCOUNT0001"):
        SandboxBackend(state_file=path, auth_id="MAANOTHERACCOUNT0001")
    path.write_text("not json")
    with pytest.raises(StateFileError, match="not a sandbox state file"):
        _backend(path)


def test_a_torn_journal_line_is_cut_off_by_the_next_change(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    one, two = valid_numbers(2)
    _verify(_backend(path), one)
    journal = path.with_name(path.name + ".journal")
    with journal.open("a") as fh:
        fh.write('{"op": "put", "caller": {"phone_nu')  # a process killed mid-append
    survivor = _backend(path)
    assert _listed(survivor) == {one: ""}
    _verify(survivor, two)
    lines = journal.read_text().splitlines()
    assert all(json.loads(line) for line in lines)  # every line whole again
    assert set(_listed(_backend(path))) == {one, two}


WRITER = """
import sys
from callerid.sandbox import DEFAULT_AUTH_ID, DEFAULT_SUBACCOUNTS, SandboxBackend
path, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
backend = SandboxBackend(state_file=path, subaccounts=DEFAULT_SUBACCOUNTS)
from tests.e2e.helpers import valid_numbers
for i, number in enumerate(valid_numbers(count, prefix=prefix)):
    started = backend.initiate(DEFAULT_AUTH_ID, number, alias=f"{prefix}-{i}")
    uuid = started.verification_uuid
    backend.complete(DEFAULT_AUTH_ID, uuid, backend.otp_for(uuid))
    if i % 3 == 0:
        backend.update(DEFAULT_AUTH_ID, number, alias=f"renamed-{i}")
"""


def test_processes_changing_one_file_at_once_lose_nothing(tmp_path: Path) -> None:
    """Two processes, 700 verifications and ~230 renames each, through at least one compaction
    (the journal folds into a snapshot past 1,000 lines) while the other keeps appending."""
    path = tmp_path / "state.json"
    _backend(path)
    root = Path(__file__).resolve().parents[2]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), prefix, "700"],
            cwd=root,
            stderr=subprocess.PIPE,
            text=True,
        )
        for prefix in ("+1415555", "+1212555")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    listed = _listed(_backend(path))
    assert len(listed) == 1400
    for prefix in ("+1415555", "+1212555"):
        for i, number in enumerate(valid_numbers(700, prefix=prefix)):
            assert listed[number] == (f"renamed-{i}" if i % 3 == 0 else f"{prefix}-{i}")
    snapshot = json.loads(path.read_text())
    assert snapshot["generation"] > 1  # compacted at least once under the other's feet


def test_a_compaction_cut_short_leaves_a_journal_that_is_ignored(tmp_path: Path) -> None:
    """Killed between the new snapshot and the new journal: the old journal's changes are all in
    the snapshot already, so they are not replayed; the next process starts a fresh journal."""
    path = tmp_path / "state.json"
    one, two = valid_numbers(2)
    first = _backend(path)
    _verify(first, one)
    first._compact()  # type: ignore[attr-defined]  # the new snapshot, then ... killed
    journal = path.with_name(path.name + ".journal")
    generation = json.loads(path.read_text())["generation"]
    stale = {"op": "put", "caller": {"phone_number": two}}  # unreadable if it were replayed
    journal.write_text(json.dumps({"generation": generation - 1}) + "\n" + json.dumps(stale) + "\n")
    reopened = _backend(path)
    assert set(_listed(reopened)) == {one}
    assert json.loads(journal.read_text().splitlines()[0])["generation"] == generation + 1
