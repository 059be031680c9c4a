"""Open everything one run talks to: the ledger, the Plivo API (or the local sandbox), the clock.

With no Plivo credentials the run serves the embedded sandbox account (its state in
`<output>/sandbox-account.json`, callerid.sandbox.embedded) in-process on 127.0.0.1, with a webhook
receiver next to it: the sandbox "texts" each OTP as a Plivo-signed inbound-SMS webhook to the
receiver, which files it in the ledger's inbox table, exactly the path a real SMS would take. The
pipeline's clock then follows the sandbox's (tests move the sandbox clock past 15 minutes).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from callerid.clock import Clock, OffsetClock, SystemClock
from callerid.ledger import open_ledger
from callerid.masking import mask_secret
from callerid.pipeline.clock_sync import SandboxClockFollower
from callerid.pipeline.options import PipelineOptions, RunPaths
from callerid.pipeline.session import Pipeline
from callerid.pipeline.shared_budget import ledger_limiter
from callerid.plivo import PlivoClient, RateLimiter, RetryPolicy, limiter_for
from callerid.plivo.errors import (
    AuthenticationError,
    PlivoConnectionError,
    PlivoError,
    PlivoTimeoutError,
    RateLimitedError,
    ServerError,
)
from callerid.settings import Settings

log = logging.getLogger(__name__)

SANDBOX_NOTICE = (
    "No Plivo credentials (PLIVO_AUTH_ID / PLIVO_AUTH_TOKEN): using the local sandbox on "
    "127.0.0.1. Nothing is sent to Plivo and no real phone receives a code."
)


class PlivoAccessError(RuntimeError):
    """The run cannot use the Plivo API: said in one line (account masked, URL, cause).

    A plain message only, so it pickles (Prefect stores a failed flow's exception)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.message,))

    def __str__(self) -> str:
        return self.message


class MissingCredentialError(PlivoAccessError):
    """Half a pair of credentials: PLIVO_AUTH_ID without PLIVO_AUTH_TOKEN, or the reverse."""


class CredentialsRefusedError(PlivoAccessError):
    """Plivo answered 401/403 to the credentials."""


class PlivoUnreachableError(PlivoAccessError):
    """No usable answer from PLIVO_API_URL: refused, timed out, a server error."""


def _cause(exc: BaseException) -> str:
    """The lowest-level reason in an exception chain, e.g. 'Connection refused'."""
    found = str(exc)
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno and current.errno > 0:
            return os.strerror(current.errno)  # "Connection refused", not asyncio's wording
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        if str(current):
            found = str(current)
        current = current.__cause__ or current.__context__
    return found


async def check_access(
    auth_id: str,
    token: str,
    base_url: str,
    *,
    limiter: RateLimiter,
    retry_policy: RetryPolicy,
    subaccount: str | None = None,
) -> None:
    """One cheap authenticated call (a one-item page of the caller ID list) before anything is
    registered or sent, so that wrong credentials or a wrong URL fail the run at once, in one
    line, with no number touched.

    It is retried as every request of the run is (`retry_policy`, the run's): a 429 is waited out,
    paced by the account's limiter, until the policy's deadline (a busy account is no reason to
    give up); a 5xx, a timeout or a refused connection is retried up to the policy's attempts.
    Wrong credentials are not retried."""
    account = mask_secret(auth_id)
    probe = PlivoClient(auth_id, token, base_url, limiter=limiter, retry_policy=retry_policy)
    async with probe:
        try:
            await probe.list_page(1, subaccount=subaccount)
        except RateLimitedError:
            raise PlivoAccessError(
                f"Plivo at {probe.base_url} kept answering 429 (rate limited) to a first request "
                f"for account {account}, past the retry deadline "
                f"({retry_policy.rate_limited_deadline_s:g} s): the account is busy"
            ) from None
        except AuthenticationError as exc:
            raise CredentialsRefusedError(
                f"Plivo refused the credentials for account {account} at {probe.base_url}, "
                f"HTTP {exc.status_code or 401}"
            ) from None
        except (PlivoConnectionError, PlivoTimeoutError) as exc:
            raise PlivoUnreachableError(
                f"cannot reach Plivo at {probe.base_url}: {_cause(exc)}"
            ) from None
        except ServerError as exc:
            raise PlivoUnreachableError(
                f"Plivo at {probe.base_url} answered HTTP {exc.status_code}: {exc.message}"
            ) from None
        except PlivoError as exc:
            raise PlivoAccessError(
                f"Plivo at {probe.base_url} refused a first request for account {account}: "
                f"{exc.message}"
            ) from None
    log.info("Plivo at %s accepts the credentials of account %s", probe.base_url, account)


def _ensure_sqlite_dir(url: str) -> None:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


@asynccontextmanager
async def open_run(
    settings: Settings,
    options: PipelineOptions,
    *,
    run_id: str,
    csv_path: str = "",
    follow_sandbox_clock: bool = False,
    sandbox_reply_delay_s: float = 1.0,
    limiter: RateLimiter | None = None,
) -> AsyncIterator[Pipeline]:
    """Yield a ready `Pipeline`; close the client, servers and database engine on exit.

    `follow_sandbox_clock`: the configured PLIVO_API_URL is a sandbox run elsewhere (tests, the
    crash test's parent process); follow its clock as the in-process sandbox's is followed.
    `limiter`: the account's pacing (default: this process's limiter of the account).
    """
    problem = settings.missing_credential()
    if problem:
        raise MissingCredentialError(f"{problem}: set both for Plivo, or neither for the sandbox")
    url = settings.resolved_database_url()
    _ensure_sqlite_dir(url)
    paths = RunPaths.for_run(settings.output_dir, run_id)
    ledger = open_ledger(url)
    async with AsyncExitStack() as stack:
        stack.callback(ledger.close)
        clock: Clock = SystemClock()
        clock_sync = None
        if settings.uses_sandbox:
            from callerid.inbox import WebhookServer
            from callerid.sandbox import SandboxServer
            from callerid.sandbox.embedded import (
                DEFAULT_AUTH_ID,
                DEFAULT_AUTH_TOKEN,
                embedded_backend,
            )

            log.info(SANDBOX_NOTICE)
            # One sandbox account over time: it lives in a file beside the ledger, shared with
            # `callerid reconcile`, the deployed flows and `callerid sandbox serve --state`.
            # One clock for the sandbox, the receiver (it stamps received_at, which the matcher
            # compares with initiated_at) and the pipeline.
            clock = OffsetClock()
            account, token = DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN
            inbox = stack.enter_context(
                WebhookServer(ledger, account, {account: token}, token, clock=clock)
            )
            sandbox = stack.enter_context(
                SandboxServer(
                    embedded_backend(settings.output_dir, clock),
                    inbox_url=inbox.url,
                    reply_delay_s=sandbox_reply_delay_s,
                )
            )
            sandbox.network.text_heard_codes = settings.sandbox_calls == "read-back"
            api_url: str = sandbox.url
            sandbox_url: str | None = sandbox.url
            code_page_base: str | None = inbox.code_page_base
        else:
            assert settings.plivo_auth_id and settings.plivo_auth_token  # uses_sandbox said so
            account = settings.plivo_auth_id
            token = settings.plivo_auth_token.get_secret_value()
            api_url = settings.plivo_api_url
            sandbox_url = None
            code_page_base = None
            if follow_sandbox_clock:
                follower = SandboxClockFollower(api_url)
                clock, clock_sync, sandbox_url = follower.clock, follower.sync, api_url
                await follower.sync()
                stack.push_async_callback(follower.aclose)
        if limiter is None and not settings.uses_sandbox:
            # several processes of one account on a PostgreSQL ledger share its budget there
            limiter = ledger_limiter(
                account, settings.rate_limit_requests, settings.rate_limit_period_s, url
            )
        if limiter is None:
            limiter = limiter_for(
                account, settings.rate_limit_requests, settings.rate_limit_period_s
            )
        pacing = limiter

        policy = RetryPolicy(rate_limited_deadline_s=settings.rate_limited_deadline_s)

        async def access_check() -> None:
            await check_access(
                account,
                token,
                api_url,
                limiter=pacing,
                retry_policy=policy,
                subaccount=options.subaccount,
            )

        async with PlivoClient(
            account, token, api_url, limiter=limiter, retry_policy=policy
        ) as client:
            pipeline = Pipeline(
                account=account,
                ledger=ledger,
                client=client,
                clock=clock,
                run_id=run_id,
                options=options,
                paths=paths,
                sandbox_url=sandbox_url,
                clock_sync=clock_sync,
                access_check=None if settings.uses_sandbox else access_check,
            )
            pipeline.csv_path = csv_path
            pipeline.code_page_base = code_page_base
            yield pipeline
