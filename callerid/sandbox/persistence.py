"""The sandbox account on disk: one account over time, shared by every process that opens the file.

Files, for a state path `FILE` (e.g. `out/sandbox-account.json`):

* `FILE`: a snapshot (JSON): the main auth id, the subaccounts and every caller ID, with a
  generation number. Replaced atomically (temporary file, fsync, `os.replace`), never edited.
* `FILE.journal`: the changes since that snapshot, one JSON line each (`put` a caller ID, `drop`
  one, add a `subaccount`, `clear` them all), after a header line naming the generation it
  continues. Appended, each change under the lock.
* `FILE.lock`: the `flock` every reader (shared) and writer (exclusive) takes. A separate file,
  because the other two are replaced and a lock on a replaced file protects nothing.

The choice (issue 11): each process holds the account in memory and follows the file, rather than
one server owning it or every request re-reading a snapshot. A request costs one `stat` of the
journal; only when another process appended does it read the new lines (under the shared lock).
A change takes the exclusive lock, catches up, checks and applies the change, and appends one
line, so changes from several processes are serialised as if there were one account server: two
processes cannot both verify one number, and none overwrites another's work. Appending is O(1)
in the account's size; the journal is folded into a new snapshot (new generation, new journal)
when it outgrows the account, so a 100,000-number account never rewrites 100,000 records per
change. A torn last line (a process killed mid-append) is cut off by the next writer.

What persists is the account: caller IDs and subaccounts. Verifications in progress, the phone
network's messages, counters and the rate window belong to the running process, as in-flight SMS
belong to the network: a verification started by one process is completed through that process.
The main account's token is not stored (it is given at start); subaccount tokens are, so the file
is created readable by its owner only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FORMAT = 1


@dataclass(frozen=True)
class JournalPosition:
    """Where this process has read the journal up to: its inode, generation and byte offset."""

    inode: int
    generation: int
    offset: int


class StateFileError(ValueError):
    """The state file cannot be used (another account's, or not a sandbox state file)."""


class AccountFile:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.journal = self.path.with_name(self.path.name + ".journal")
        self.lockfile = self.path.with_name(self.path.name + ".lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"AccountFile({str(self.path)!r})"

    @contextlib.contextmanager
    def locked(self, exclusive: bool) -> Iterator[None]:
        fd = os.open(self.lockfile, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    # -- the snapshot ---------------------------------------------------------------------------

    def read_snapshot(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            raise StateFileError(f"{self.path} is not a sandbox state file") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise StateFileError(f"{self.path} is not a sandbox state file (format {FORMAT})")
        return data

    def write_snapshot(self, data: dict[str, Any]) -> None:
        """Atomically: readers see the old snapshot or the new one, never half of one."""
        _replace(self.path, json.dumps({"format": FORMAT, **data}, separators=(",", ":")) + "\n")

    # -- the journal ----------------------------------------------------------------------------

    def journal_stat(self) -> tuple[int, int] | None:
        """(inode, size) of the journal, None when there is none."""
        try:
            st = os.stat(self.journal)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_size

    def start_journal(self, generation: int) -> JournalPosition:
        header = json.dumps({"generation": generation}) + "\n"
        _replace(self.journal, header)
        stat = self.journal_stat()
        assert stat is not None
        return JournalPosition(stat[0], generation, len(header.encode()))

    def read_journal(self, offset: int = 0) -> tuple[int | None, list[dict[str, Any]], int]:
        """From `offset`: the header's generation (when reading from 0), the complete change
        lines, and the offset after the last complete line (a torn tail is left unread)."""
        try:
            with self.journal.open("rb") as fh:
                fh.seek(offset)
                raw = fh.read()
        except FileNotFoundError:
            return None, [], 0
        end = raw.rfind(b"\n") + 1
        generation = None
        changes = []
        for number, line in enumerate(raw[:end].splitlines()):
            try:
                item = json.loads(line)
            except ValueError:
                log.warning("sandbox state: skipped an unreadable journal line in %s", self.journal)
                continue
            if offset == 0 and number == 0:
                generation = int(item.get("generation", -1))
            else:
                changes.append(item)
        return generation, changes, offset + end

    def append(self, changes: list[dict[str, Any]], position: JournalPosition) -> JournalPosition:
        """Append under the exclusive lock, at `position` (a torn tail past it is cut off)."""
        data = "".join(json.dumps(c, separators=(",", ":")) + "\n" for c in changes).encode()
        fd = os.open(self.journal, os.O_WRONLY)
        try:
            if os.fstat(fd).st_size != position.offset:
                os.ftruncate(fd, position.offset)
            os.lseek(fd, position.offset, os.SEEK_SET)
            os.write(fd, data)
        finally:
            os.close(fd)
        return JournalPosition(position.inode, position.generation, position.offset + len(data))


def _replace(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
