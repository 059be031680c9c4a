"""Real processes for deployment tests: `prefect server start`, process workers, the sandbox.

Every process is started in its own session (process group) and stopped by that group's id:
SIGINT, then SIGTERM, then SIGKILL, each with a bounded wait. Logs go to files next to the
temporary PREFECT_HOME, and are printed when a wait times out.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 60) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        pgid = self.popen.pid  # start_new_session: the group id is the child's pid
        for sig, wait_s in ((signal.SIGINT, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                return
            try:
                self.popen.wait(wait_s)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):  # group members that outlived the leader
            os.killpg(pgid, signal.SIGKILL)


def start(name: str, args: list[str], env: Mapping[str, str], logs: Path) -> Proc:
    log = logs / f"{name}.log"
    with log.open("wb") as fh:
        popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env=dict(env),
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Proc(name, popen, log)


def wait_http(url: str, proc: Proc, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.tail()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{proc.name} not up after {timeout_s} s at {url}:\n{proc.tail()}")


@dataclass
class PrefectStack:
    """A Prefect server of our own; the env every Prefect CLI / worker process gets."""

    home: Path
    api_url: str
    env: dict[str, str]
    procs: list[Proc] = field(default_factory=list)

    def cli(self, *args: str, timeout_s: float = 120, env: Mapping[str, str] | None = None) -> str:
        done = subprocess.run(
            [str(BIN / "prefect"), "--no-prompt", *args],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"prefect {' '.join(args)} -> {done.returncode}:\n{done.stdout}\n{done.stderr}"
            )
        return done.stdout

    def start_worker(
        self, name: str, pool: str, env: Mapping[str, str], limit: int | None = None
    ) -> Proc:
        args = [str(BIN / "prefect"), "worker", "start", "--pool", pool, "--type", "process"]
        args += ["--name", name, *(["--limit", str(limit)] if limit else [])]
        proc = start(name, args, {**self.env, **env}, self.home)
        self.procs.append(proc)
        return proc

    def stop_workers(self) -> None:
        for proc in self.procs:
            proc.stop()
        self.procs.clear()

    def api(self, method: str, path: str, json: Any = None) -> Any:
        response = httpx.request(method, f"{self.api_url}{path}", json=json, timeout=30)
        response.raise_for_status()
        return response.json() if response.content else None

    def create_flow_run(self, deployment: str, parameters: Mapping[str, Any]) -> str:
        flow_name, name = deployment.split("/")
        found = self.api("GET", f"/deployments/name/{flow_name}/{name}")
        run = self.api(
            "POST", f"/deployments/{found['id']}/create_flow_run", {"parameters": dict(parameters)}
        )
        return str(run["id"])

    def wait_flow_run(
        self, run_id: str, timeout_s: float, *, give_up: bool = False
    ) -> dict[str, Any]:
        """The run once final. After `timeout_s`: raise, or with `give_up` cancel it (forced)
        and return it as it was, for the caller's assertions to report."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            run = self.api("GET", f"/flow_runs/{run_id}")
            if run["state_type"] in FINAL_STATES:
                return dict(run)
            time.sleep(1)
        if give_up:
            cancel = {"state": {"type": "CANCELLED", "message": "test timeout"}, "force": True}
            self.api("POST", f"/flow_runs/{run_id}/set_state", cancel)
            return dict(run)
        tails = "\n\n".join(f"--- {p.name}\n{p.tail()}" for p in self.procs)
        raise TimeoutError(f"flow run {run_id} not final after {timeout_s} s\n{tails}")

    def logs_of(self, run_id: str) -> str:
        """The run's log messages (task runs are not recorded: that service is off)."""
        body = {"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC", "limit": 200}
        return "\n".join(str(e["message"]) for e in self.api("POST", "/logs/filter", body))

    def artifact(self, key: str) -> dict[str, Any] | None:
        found = self.api(
            "POST", "/artifacts/latest/filter", {"artifacts": {"key": {"any_": [key]}}}
        )
        return dict(found[0]) if found else None


def sandbox_process(logs: Path, port: int, rate: str, extra: list[str] | None = None) -> Proc:
    """`callerid sandbox serve` as its own process; returns once it answers."""
    args = [
        sys.executable, "-c", "from callerid.cli import main; main()",
        "sandbox", "serve", "--port", str(port), "--rate", rate, "--seed", "11",
        *(extra or []),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PLIVO_"))}
    proc = start(f"sandbox-{port}", args, env, logs)
    try:
        wait_http(f"http://127.0.0.1:{port}/_sandbox/stats", proc, 60)
    except BaseException:
        proc.stop()
        raise
    return proc
