"""Which account a reconcile talks to: the configured Plivo account, or with no credentials at all
the embedded sandbox account (callerid.sandbox.embedded), the one `callerid run` verifies into.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from callerid.plivo import PlivoClient, RateLimiter, limiter_for
from callerid.settings import Settings

EMBEDDED_AUTH_ID = "MASANDBOXACCOUNT0001"  # callerid.sandbox.DEFAULT_AUTH_ID, without its import


class IncompleteCredentialsError(ValueError):
    """One of PLIVO_AUTH_ID / PLIVO_AUTH_TOKEN is set without the other: never the sandbox."""


def account_id(settings: Settings) -> str:
    """The configured account's auth id; the embedded sandbox account's when neither
    credential is set (only then: half a configuration is a mistake, not a wish)."""
    problem = settings.missing_credential()
    if problem:
        raise IncompleteCredentialsError(problem)
    if settings.uses_sandbox:
        return EMBEDDED_AUTH_ID
    assert settings.plivo_auth_id is not None  # uses_sandbox said so
    return settings.plivo_auth_id


@asynccontextmanager
async def open_account(
    settings: Settings, limiter: RateLimiter | None = None
) -> AsyncIterator[PlivoClient]:
    """A client of the account (`limiter`: default, this process's limiter of the account).

    The embedded account is served in this process while the client is open; its state file
    is shared with every other process that serves it."""
    account = account_id(settings)
    if limiter is None:
        limiter = limiter_for(account, settings.rate_limit_requests, settings.rate_limit_period_s)
    if settings.uses_sandbox:
        from callerid.sandbox.embedded import DEFAULT_AUTH_TOKEN, embedded_sandbox

        with embedded_sandbox(settings.output_dir) as sandbox:
            async with PlivoClient(account, DEFAULT_AUTH_TOKEN, sandbox.url, limiter=limiter) as c:
                yield c
        return
    assert settings.plivo_auth_token is not None  # not the sandbox: both are set
    token = settings.plivo_auth_token.get_secret_value()
    async with PlivoClient(account, token, settings.plivo_api_url, limiter=limiter) as client:
        yield client
