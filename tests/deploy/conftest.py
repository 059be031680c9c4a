"""One real Prefect server for the deployment tests: PostgreSQL-backed (the GCL shared by workers
is only trustworthy there, prefect-notes §2/§9), fresh PREFECT_HOME, 127.0.0.1, a free port,
`prefect.yaml` deployed with `prefect deploy --all`. Torn down (processes and database) at the end.

Boot is ~20 s on 2 cores, so the server is shared by the (few, `slow`) tests of this folder.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import PG_ADMIN_URL
from tests.deploy.stack import BIN, PrefectStack, free_port, start, wait_http

POOL = "callerid-process"
SERVER_BOOT_S = 180
UNUSED_SERVICES = (
    "SCHEDULER",  # the cron schedule is checked as data; its runs are not waited for
    "LATE_RUNS",
    "FOREMAN",
    "TRIGGERS",
    "PAUSE_EXPIRATIONS",
    "CANCELLATION_CLEANUP",
    "REPOSSESSOR",
    "TASK_RUN_RECORDER",
)


def _admin_dsn() -> str:
    return PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(scope="session")
def prefect_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectStack]:
    home = tmp_path_factory.mktemp("prefect-server-home")
    db = f"callerid_prefect_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql+psycopg://", "postgresql+asyncpg://")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PLIVO_"))}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=api_url,
        PREFECT_SERVER_DATABASE_CONNECTION_URL=f"{base}/{db}",
        PREFECT_SERVER_UI_ENABLED="false",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_LOGGING_LEVEL="INFO",
        PREFECT_SERVER_LOGGING_LEVEL="WARNING",
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_WORKER_PREFETCH_SECONDS="2",
        PYTHONUNBUFFERED="1",
    )
    stack = PrefectStack(home=home, api_url=api_url, env=env)
    # Background services these tests do not exercise compete with them for two cores.
    quiet = {f"PREFECT_SERVER_SERVICES_{s}_ENABLED": "false" for s in UNUSED_SERVICES}
    server = start(
        "prefect-server",
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        {**env, **quiet},
        home,
    )
    try:
        wait_http(f"{api_url}/health", server, SERVER_BOOT_S)
        stack.api("POST", "/work_pools/", {"name": POOL, "type": "process"})  # no CLI boot
        stack.cli("deploy", "--all")
        yield stack
    finally:
        for proc in reversed(stack.procs):
            proc.stop()
        server.stop()
        with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def _own_workers(prefect_stack: PrefectStack) -> Iterator[None]:
    """Each test's workers stop with it: a leftover worker would take the next test's runs."""
    yield
    prefect_stack.stop_workers()
