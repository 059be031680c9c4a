"""Prefect's part in reaching one Plivo account: credentials and the cross-process rate bucket.

Credentials: the environment first (PLIVO_AUTH_ID / PLIVO_AUTH_TOKEN, e.g. a worker's environment
or a deployment's `job_variables.env`); if the token is absent there, the Prefect Secret block
`plivo-auth-token` (create it with `callerid setup-prefect --store-token`).

Pacing: every request already waits for the account's in-process `RateLimiter`. Under a Prefect
server (PREFECT_API_URL set) several workers may run flows for the same account at once, so the
limiter is also fed from a Prefect global concurrency limit (GCL) with slot decay,
`plivo-<auth id>`, which `callerid setup-prefect` creates. Slots are taken `block` at a time
(prefect-notes §2: one acquisition costs ~100 ms, so one per request would cap us near 10/s).

Bucket arithmetic: a decaying GCL grants at most `limit + decay * period` slots in any `period`,
and each process may still hold up to one block it took earlier. With `limit = 2 * block` (one
block of slack, so a steady taker rarely meets a 423 and its jittered Retry-After) and
`decay = fraction * N / period`, any period sees at most `2 * block + fraction * N + workers *
block` requests: for 300 / 5 s (block 10, fraction 0.85) 295 with 2 workers; more workers may
meet a 429 now and then, which the client retries.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from dataclasses import dataclass
from typing import Any, cast

from callerid.plivo import RateLimiter, SlotSource, limiter_for
from callerid.plivo.limiter import install_limiter
from callerid.settings import Settings, load_settings

log = logging.getLogger(__name__)

TOKEN_BLOCK = "plivo-auth-token"
DEFAULT_FRACTION = 0.85
GUARANTEED_WORKERS = 2


@dataclass(frozen=True)
class BucketShape:
    name: str
    limit: int  # GCL slots: the burst the bucket allows, two blocks
    block: int  # slots taken per acquisition
    slot_decay_per_second: float


def limit_name(auth_id: str) -> str:
    return f"plivo-{auth_id.lower()}"


def bucket_shape(
    auth_id: str, max_requests: int, period_s: float, fraction: float = DEFAULT_FRACTION
) -> BucketShape:
    if not 0 < fraction <= 1:
        raise ValueError("fraction must be in (0, 1]")
    block = max(1, min(20, max_requests // 30))
    limit = 2 * block
    # small limits: lower the decay so that GUARANTEED_WORKERS processes still fit (docstring)
    headroom = (max_requests - limit - GUARANTEED_WORKERS * block) / period_s
    decay = min(fraction * max_requests / period_s, headroom)
    if decay <= 0:
        raise ValueError(f"an account limit of {max_requests} is too small to share")
    return BucketShape(limit_name(auth_id), limit, block, math.floor(decay * 1000) / 1000)


def account_settings() -> Settings:
    """Settings from the environment, with the auth token from the Secret block if env lacks it."""
    settings = load_settings()
    if settings.plivo_auth_id and not settings.plivo_auth_token:  # unset or empty
        try:
            token = secret_value(TOKEN_BLOCK)
        except ValueError:  # no such block: leave it to the client to say what is missing
            return settings
        settings = load_settings(plivo_auth_token=str(token))
    return settings


def secret_value(block_name: str) -> Any:
    """The value of a Prefect Secret block (ValueError when there is none by that name).

    Loaded synchronously on purpose: `Secret.load` dispatches on its caller, and in an async
    context it would hand back a coroutine."""
    from prefect.blocks.system import Secret

    block = Secret.load(block_name, _sync=True)  # type: ignore[call-arg]
    return cast("Secret[Any]", block).get()


def under_prefect_server() -> bool:
    return bool(os.environ.get("PREFECT_API_URL"))


class MissingLimitError(RuntimeError):
    """The account's global concurrency limit does not exist on the Prefect server."""


def gcl_slot_source(name: str, timeout_s: float | None = None) -> SlotSource:
    """Reserve `n` slots of the GCL `name`; strict, so a missing limit is an error, not a no-op."""

    async def take(n: int) -> None:
        from prefect.concurrency._asyncio import ConcurrencySlotAcquisitionError
        from prefect.concurrency.asyncio import rate_limit

        try:
            await rate_limit(name, occupy=n, timeout_seconds=timeout_s, strict=True)
        except ConcurrencySlotAcquisitionError as exc:
            raise MissingLimitError(
                f"cannot take slots of the global concurrency limit {name!r} ({exc}); "
                "create or update it with `callerid setup-prefect`, run with the same "
                "CALLERID_RATE_LIMIT_REQUESTS / _PERIOD_S as the workers"
            ) from None

    return take


_installed: dict[str, RateLimiter] = {}
_installed_lock = threading.Lock()


def install_shared_limiter(settings: Settings) -> RateLimiter:
    """Make the account's process-wide limiter (`limiter_for`) one fed from the account's GCL.

    Done before any client exists (a deployment pull step, or the start of a flow), so every
    client of this process, whichever module builds it, shares the one GCL-fed bucket.
    """
    auth_id = settings.plivo_auth_id
    if not auth_id:
        raise ValueError("no PLIVO_AUTH_ID: cannot pick the account's rate limiter")
    max_requests, period_s = settings.rate_limit_requests, settings.rate_limit_period_s
    shape = bucket_shape(auth_id, max_requests, period_s)
    with _installed_lock:
        if auth_id in _installed:
            return _installed[auth_id]
        limiter = RateLimiter(
            max_requests,
            period_s,
            slot_source=gcl_slot_source(shape.name),
            slot_block=shape.block,
        )
        # The registry is the one place every client of this process looks for its limiter.
        existing = install_limiter(auth_id, limiter)
        if existing is not limiter:
            # A client of this process already paces with a plain limiter; a second bucket would
            # double this process's rate, so keep it (pacing stays right, sharing is off).
            log.warning(
                "account %s already has an in-process limiter: this process does not share the "
                "global concurrency limit %s (install it before the first client)",
                auth_id,
                shape.name,
            )
            return existing
        _installed[auth_id] = limiter
        return limiter


def account_limiter(settings: Settings, *, shared: bool | None = None) -> RateLimiter:
    """The account's limiter in this process; fed from the account's GCL when `shared`
    (default: when a Prefect server is configured), else from the ledger when that is
    PostgreSQL (`callerid.pipeline.shared_budget`)."""
    auth_id = settings.plivo_auth_id
    if not auth_id:
        raise ValueError("no PLIVO_AUTH_ID: cannot pick the account's rate limiter")
    if under_prefect_server() if shared is None else shared:
        install_shared_limiter(settings)
    else:  # no Prefect server: processes on a PostgreSQL ledger share the budget through it
        from callerid.pipeline.shared_budget import ledger_limiter

        limiter = ledger_limiter(
            auth_id,
            settings.rate_limit_requests,
            settings.rate_limit_period_s,
            settings.resolved_database_url(),
        )
        if limiter is not None:
            return limiter
    return limiter_for(auth_id, settings.rate_limit_requests, settings.rate_limit_period_s)


def ensure_account_limit(
    auth_id: str, max_requests: int, period_s: float, fraction: float = DEFAULT_FRACTION
) -> BucketShape:
    """Create or update the account's GCL on the configured Prefect server (idempotent)."""
    from prefect.client.orchestration import get_client

    shape = bucket_shape(auth_id, max_requests, period_s, fraction)
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(
            shape.name, limit=shape.limit, slot_decay_per_second=shape.slot_decay_per_second
        )
    return shape


def store_token(token: str) -> None:
    from prefect.blocks.system import Secret
    from pydantic import SecretStr

    Secret(value=SecretStr(token)).save(TOKEN_BLOCK, overwrite=True)


def worst_case_requests(shape: BucketShape, period_s: float, workers: int) -> int:
    """Worst case requests in one `period_s` with `workers` processes (see the docstring)."""
    return shape.limit + math.floor(shape.slot_decay_per_second * period_s) + workers * shape.block


def ensure_process_pool(name: str) -> str:
    """Create a process work pool called `name` unless it exists; 'created' or 'exists'."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))
        except ObjectAlreadyExists:
            return "exists"
    return "created"
