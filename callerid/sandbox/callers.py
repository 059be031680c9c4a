"""The account's caller IDs inside the sandbox backend: indexed for list pages, optionally stored.

`StoredCallers` is the part of `BackendState` that holds the caller IDs. List pages come from
per-view indexes (the whole account, one subaccount, one country: each sorted oldest first by
(created_at, creation sequence)), never from a scan, so a page costs the same at 100 or 100,000
numbers. With a state file (persistence.py) every change is also a journal line, and every
operation first catches up with what other processes wrote: `_reading()` for operations that
look, `_changing()` for operations that change the account (under the file's exclusive lock).
"""

from __future__ import annotations

import contextlib
import threading
from bisect import bisect_left, insort
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from callerid.sandbox.models import CallerId, Channel
from callerid.sandbox.persistence import AccountFile, JournalPosition, StateFileError

SortKey = tuple[datetime, int, str]


def caller_to_json(caller: CallerId, order: int) -> dict[str, Any]:
    return {
        "phone_number": caller.phone_number,
        "alias": caller.alias,
        "country": caller.country,
        "subaccount": caller.subaccount,
        "verification_uuid": caller.verification_uuid,
        "channel": caller.channel.value,
        "created_at": caller.created_at.isoformat(),
        "modified_at": caller.modified_at.isoformat(),
        "created_extra_ns": caller.created_extra_ns,
        "order": order,
    }


def caller_from_json(item: dict[str, Any]) -> tuple[CallerId, int]:
    caller = CallerId(
        phone_number=str(item["phone_number"]),
        alias=str(item["alias"]),
        country=str(item["country"]),
        subaccount=str(item["subaccount"]),
        verification_uuid=str(item["verification_uuid"]),
        channel=Channel(item["channel"]),
        created_at=datetime.fromisoformat(item["created_at"]),
        modified_at=datetime.fromisoformat(item["modified_at"]),
        created_extra_ns=int(item.get("created_extra_ns", 0)),
    )
    return caller, int(item["order"])


class StoredCallers:
    main_auth_id: str
    _tokens: dict[str, str]
    _lock: threading.RLock
    _file: AccountFile | None
    _callers: dict[str, CallerId]
    _order: dict[str, int]  # creation sequence: breaks created_at ties
    _seq: int
    _views: dict[tuple[str, str], list[SortKey]]
    _changes: list[dict[str, Any]] | None = None
    _position: JournalPosition | None = None
    _generation: int = 0
    _journal_lines: int = 0

    # -- the in-memory account and its indexes ----------------------------------------------------

    def _clear_callers(self) -> None:
        self._callers = {}
        self._order = {}
        self._seq = 0
        self._views = {}

    def _store(self, caller: CallerId) -> None:
        """Add or replace a caller ID (a change of the account: stored when there is a file)."""
        number = caller.phone_number
        if number not in self._order:
            self._seq += 1
        self._put(caller, self._order.get(number, self._seq))
        self._record({"op": "put", "caller": caller_to_json(caller, self._order[number])})

    def _drop(self, number: str) -> None:
        self._remove(number)
        self._record({"op": "drop", "phone_number": number})

    def _put(self, caller: CallerId, order: int) -> None:
        old = self._callers.get(caller.phone_number)
        if old is not None:
            self._unindex(old)
        self._order[caller.phone_number] = order
        self._seq = max(self._seq, order)
        self._callers[caller.phone_number] = caller
        self._index(caller)

    def _remove(self, number: str) -> None:
        caller = self._callers.pop(number, None)
        if caller is not None:
            self._unindex(caller)
            del self._order[number]

    @staticmethod
    def _view_keys(caller: CallerId) -> tuple[tuple[str, str], ...]:
        return (("all", ""), ("sub", caller.subaccount), ("country", caller.country.upper()))

    def _sort_key(self, caller: CallerId) -> SortKey:
        return (caller.created_at, self._order[caller.phone_number], caller.phone_number)

    def _index(self, caller: CallerId) -> None:
        key = self._sort_key(caller)
        for view in self._view_keys(caller):
            insort(self._views.setdefault(view, []), key)  # an append when created_at grows

    def _unindex(self, caller: CallerId) -> None:
        key = self._sort_key(caller)
        for view in self._view_keys(caller):
            entries = self._views[view]
            at = bisect_left(entries, key)
            if at < len(entries) and entries[at] == key:
                del entries[at]

    def _view(self, name: str, value: str) -> list[SortKey]:
        return self._views.get((name, value), [])

    # -- following the state file ----------------------------------------------------------------

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """Hold the backend lock, caught up with the file (one stat when nothing changed)."""
        with self._lock:
            self._catch_up(locked=False)
            yield

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """Hold the backend lock and the file's exclusive lock, caught up; the changes made
        inside are appended to the journal on the way out (also when an error ends the block)."""
        with self._lock:
            if self._file is None or self._changes is not None:  # no file, or already inside
                yield
                return
            with self._file.locked(exclusive=True):
                self._catch_up(locked=True)
                self._changes = []
                try:
                    yield
                finally:
                    changes, self._changes = self._changes, None
                    if changes:
                        self._persist(changes)

    def _record(self, change: dict[str, Any]) -> None:
        if self._file is None:
            return
        if self._changes is not None:
            self._changes.append(change)
            return
        with self._file.locked(exclusive=True):  # a change made outside _changing()
            self._persist([change])

    def _attach(self, file: AccountFile) -> None:
        """Follow `file`: load the account it holds, or create it from this backend's."""
        with self._lock, file.locked(exclusive=True):
            asked = dict(self._tokens)
            self._file = file
            self._position = None
            self._load()
            if self._position is None:  # no file yet, or a compaction was cut short
                self._compact()
            self._changes = []
            try:
                for auth_id, token in asked.items():
                    if auth_id != self.main_auth_id and self._tokens.get(auth_id) != token:
                        self._tokens[auth_id] = token
                        self._record({"op": "subaccount", "auth_id": auth_id, "token": token})
            finally:
                changes, self._changes = self._changes, None
                if changes:
                    self._persist(changes)

    def _catch_up(self, *, locked: bool) -> None:
        if self._file is None:
            return
        stat, position = self._file.journal_stat(), self._position
        if position is not None and stat == (position.inode, position.offset):
            return  # nothing new: the common case, one stat
        if locked:
            self._load()
        else:
            with self._file.locked(exclusive=False):
                self._load()

    def _load(self) -> None:
        """Read what is new in the file (the journal's tail, or everything after a compaction
        by another process). The caller holds the file's lock."""
        assert self._file is not None
        stat, position = self._file.journal_stat(), self._position
        if position is not None and stat is not None and stat[0] == position.inode:
            _, changes, offset = self._file.read_journal(position.offset)
            self._apply(changes)
            self._position = JournalPosition(position.inode, position.generation, offset)
            return
        snapshot = self._file.read_snapshot()
        self._clear_callers()
        self._position = None
        if snapshot is None:
            return
        if snapshot.get("auth_id") != self.main_auth_id:
            raise StateFileError(
                f"{self._file.path} holds account {snapshot.get('auth_id')}, "
                f"not {self.main_auth_id}"
            )
        self._generation = int(snapshot["generation"])
        self._tokens.update(snapshot.get("subaccounts", {}))
        for item in snapshot.get("caller_ids", []):
            self._put(*caller_from_json(item))
        self._seq = max(self._seq, int(snapshot.get("seq", 0)))
        generation, changes, offset = self._file.read_journal(0)
        stat = self._file.journal_stat()
        if generation == self._generation and stat is not None:
            self._apply(changes)
            self._position = JournalPosition(stat[0], generation, offset)
            self._journal_lines = len(changes)
        # else: a journal of an older generation (a compaction cut short): the next change
        # starts a new snapshot and journal

    def _apply(self, changes: list[dict[str, Any]]) -> None:
        for change in changes:
            op = change.get("op")
            if op == "put":
                self._put(*caller_from_json(change["caller"]))
            elif op == "drop":
                self._remove(str(change["phone_number"]))
            elif op == "subaccount":
                self._tokens[str(change["auth_id"])] = str(change["token"])
            elif op == "clear":
                self._clear_callers()
        self._journal_lines += len(changes)

    def _persist(self, changes: list[dict[str, Any]]) -> None:
        """Under the exclusive lock, caught up: append, or fold everything into a snapshot."""
        assert self._file is not None
        if self._position is None:
            self._compact()
            return
        self._position = self._file.append(changes, self._position)
        self._journal_lines += len(changes)
        if self._journal_lines > max(1000, len(self._callers)):
            self._compact()

    def _compact(self) -> None:
        assert self._file is not None
        generation = self._generation + 1
        self._file.write_snapshot(
            {
                "generation": generation,
                "auth_id": self.main_auth_id,
                "subaccounts": {a: t for a, t in self._tokens.items() if a != self.main_auth_id},
                "seq": self._seq,
                "caller_ids": [
                    caller_to_json(c, self._order[n]) for n, c in sorted(self._callers.items())
                ],
            }
        )
        self._position = self._file.start_journal(generation)
        self._generation = generation
        self._journal_lines = 0


__all__ = ["StateFileError", "StoredCallers", "caller_from_json", "caller_to_json"]
