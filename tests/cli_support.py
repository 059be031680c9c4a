"""Running the real `callerid` command in a subprocess, as a new user would: a fresh HOME, a
fresh working folder, none of our or Prefect's variables unless a test sets them."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CALLERID = str(Path(sys.executable).with_name("callerid"))
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample.csv"


@dataclass(frozen=True)
class Done:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        """Every non-blank line the user saw, stdout then stderr."""
        return [line for line in (self.out + self.err).splitlines() if line.strip()]


def fresh_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a new user: HOME is `home`; no PLIVO_/CALLERID_/PREFECT_ variables."""
    home.mkdir(parents=True, exist_ok=True)
    drop = ("PLIVO_", "CALLERID_", "PREFECT_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(HOME=str(home), DO_NOT_TRACK="1", COLUMNS="100", **extra)
    return env


def callerid(
    *args: str,
    env: dict[str, str],
    cwd: Path,
    timeout: float = 600,
    python_flags: tuple[str, ...] = (),
) -> Done:
    command = (
        [sys.executable, *python_flags, CALLERID, *args] if python_flags else [CALLERID, *args]
    )
    done = subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    return Done(done.returncode, done.stdout, done.stderr)
