"""The terminal's line when a run starts waiting for people, through a file in the run's folder.

The run (the people lane, or the `--ask-person` form) appends one JSON line to `waiting.jsonl`
per wave; `callerid run`'s watch loop, which already reads the files the flow writes, prints each
new line once. Prefect's console logging does not reach a non-TTY terminal the same way, and the
run may be in a thread that must not print: the file is the one channel both sides share.

Counts and links only: never a code, never an owner's link (it is a bearer credential for the
numbers it names; the code page's base address is shown instead).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FILE_NAME = "waiting.jsonl"


@dataclass(frozen=True)
class Waiting:
    """One wave (or round of reminders, or `--ask-person` form) as the terminal tells it."""

    wave: int
    numbers: int
    owners: int = 0
    emailed: int = 0
    failed: int = 0
    reminder: bool = False
    channels: dict[str, int] = field(default_factory=dict)
    form: str | None = None  # the paused run's (or the run's) Prefect UI link, with a server
    page: str | None = None  # the code page's base address (owners' links start with it)
    why_not: str | None = None  # why owners could not be emailed (no SMTP, no public URL)

    def line(self) -> str:
        numbers = _count(self.numbers, "number")
        if self.reminder:
            head = f"Reminded {self.emailed} of {_count(self.owners, 'owner')} of {numbers}"
        elif self.owners:
            head = (
                f"Waiting for people (wave {self.wave}): {numbers}{_by(self.channels)} "
                f"{'needs' if self.numbers == 1 else 'need'} a code typed; "
                f"{self.emailed} of {_count(self.owners, 'owner')} emailed"
            )
        else:
            head = (
                f"Waiting for a person: {numbers} "
                f"{'needs' if self.numbers == 1 else 'need'} a code typed"
            )
        parts = [head]
        if self.failed and self.why_not:
            parts.append(f"not emailed: {self.why_not}")
        elif self.failed:
            parts.append(f"{self.failed} could not be emailed (see notifications.csv)")
        if self.reminder:
            return "; ".join(parts)
        if self.form:
            parts.append(f"form: {self.form}")
        if self.page and self.emailed:
            parts.append(f"their links open the code page at {self.page}")
        elsewhere = self.form or (self.page and self.emailed)
        parts.append(f"{'or ' if elsewhere else ''}`callerid otp submit NUMBER CODE`")
        return "; ".join(parts)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _by(channels: dict[str, int]) -> str:
    named = {"call": "voice call", "sms": "SMS"}
    if not channels:
        return ""
    return " (" + ", ".join(f"{n} {named.get(c, c)}" for c, n in sorted(channels.items())) + ")"


def write(folder: Path, waiting: Waiting) -> None:
    """Append one line (whole: the reader ignores a line not yet ended)."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / FILE_NAME).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(asdict(waiting), separators=(",", ":")) + "\n")


def read(folder: Path) -> list[Waiting]:
    """Every whole line written so far (none when the file is not there yet)."""
    try:
        text = (folder / FILE_NAME).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    found: list[Waiting] = []
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break  # being written
        try:
            data: Any = json.loads(line)
            found.append(Waiting(**data))
        except (ValueError, TypeError):
            continue
    return found


class Announcer:
    """Prints each new line of a run's `waiting.jsonl` once (the CLI's watch loop polls it)."""

    def __init__(self, folder: Path, say: Any) -> None:
        self.folder, self.say, self.seen = folder, say, 0

    def poll(self) -> None:
        found = read(self.folder)
        for waiting in found[self.seen :]:
            self.say(waiting.line())
        self.seen = max(self.seen, len(found))
