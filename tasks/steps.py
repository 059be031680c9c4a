"""Deployment pull steps (`prefect.yaml`): they run in the flow-run process, before the flow loads.

    pull:
      - tasks.steps.enter_project: {}
      - tasks.steps.prepare_account: {}

`enter_project` moves to this project's root, so `flows/...` entrypoints resolve wherever the
worker was started (the package is installed from this checkout; other machines would use a
`git_clone` step instead). `prepare_account` completes the credentials from the Secret block when
the environment lacks the token, and, under a Prefect server, makes the account's limiter the
GCL-fed one before any flow code builds a client. Outputs never carry a secret.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from callerid.settings import load_settings
from tasks.account import account_settings, install_shared_limiter, limit_name, under_prefect_server

log = logging.getLogger(__name__)


def project_root() -> Path:
    return Path(__file__).resolve().parent.parent


def enter_project() -> dict[str, str]:
    return {"directory": str(project_root())}


def prepare_account() -> dict[str, str]:
    if not load_settings().plivo_auth_token:
        settings = account_settings()
        if settings.plivo_auth_token:
            os.environ["PLIVO_AUTH_TOKEN"] = settings.plivo_auth_token.get_secret_value()
            log.info("PLIVO_AUTH_TOKEN taken from the Secret block")
    settings = load_settings()
    if not settings.plivo_auth_id or not under_prefect_server():
        return {"rate_limit": "in-process"}
    install_shared_limiter(settings)
    return {"rate_limit": limit_name(settings.plivo_auth_id)}
