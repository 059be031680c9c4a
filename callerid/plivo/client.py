"""Async client for Plivo's Verified Caller ID API (plivo-api.md §1), paced and retried in one
layer.

Configuration precedence: argument > environment (PLIVO_AUTH_ID, PLIVO_AUTH_TOKEN, PLIVO_API_URL) >
https://api.plivo.com. Every request waits for the account's shared `RateLimiter` (by default
`limiter_for(auth_id)` with CALLERID_RATE_LIMIT_REQUESTS / _PERIOD_S from `load_settings()`);
completions ask with high priority. Retries follow `RetryPolicy` (see retry.py for what is and is
not repeated).

Outcome rules the pipeline relies on:
* `initiate` never sends a second POST unless the first cannot have been acted on; otherwise it
  raises `OutcomeUnknownError` carrying the phone number.
* `complete` is repeated after a timeout/5xx. If a repeat then gets a 4xx, the first attempt may
  have succeeded: with `phone_number` given the client GETs the number and returns the caller ID
  if it is listed; without it, it raises `OutcomeUnknownError`.
* `delete` raises `NotFoundError` for an unknown number unless `missing_ok=True`; a 404 on a
  repeat after an unanswered attempt counts as deleted.

Requests go over a lean HTTP/1.1 pool of kept-alive connections (`_wire.py`; ~0.2 ms of CPU a
request against ~1 ms through httpx), or through httpx when the environment names a proxy for the
API's URL or a test passes an httpx `transport`.

A client's connection pool belongs to the event loop that uses it: code that runs on several loops
(Prefect task threads) makes one client per loop. They still share the account's one limiter.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any, Self
from urllib.parse import urlsplit
from urllib.request import getproxies_environment, proxy_bypass

import httpx

from callerid import __version__
from callerid.plivo._transport import (
    KEEPALIVE_EXPIRY_S,
    POOL_MAX,
    Reply,
    RequestTrace,
    Transport,
    lane_limits,
    pool_limits,
)
from callerid.plivo._wire import WirePool
from callerid.plivo.errors import (
    AuthenticationError,
    NotFoundError,
    OutcomeUnknownError,
    PlivoError,
    RequestRejectedError,
    UnexpectedResponseError,
)
from callerid.plivo.limiter import Priority, RateLimiter, limiter_for
from callerid.plivo.models import CallerId, Channel, Initiation, Page
from callerid.plivo.retry import RetryPolicy
from callerid.settings import DEFAULT_API_URL, load_settings

# ASCII digits only, to the very end (`$` also matches before a final newline, and `\d` takes any
# script's digits): what passes goes into a request's path.
_E164_RE = re.compile(r"\+?[1-9][0-9]{6,14}")
_OTP_RE = re.compile(r"[0-9]{4,8}")
_ID_RE = re.compile(r"[A-Za-z0-9_-]+")
PAGE_SIZE = 20


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _digits(phone_number: str) -> str:
    """Validate an E.164 number; return it without '+', as Plivo's resource_uri writes it."""
    if not isinstance(phone_number, str) or not _E164_RE.fullmatch(phone_number):
        raise ValueError(f"not an E.164 phone number: {phone_number!r}")
    return phone_number.lstrip("+")


def _path_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise ValueError(f"{what} must be letters, digits, '-' or '_'; got {value!r}")
    return value


def _proxied(url: str) -> bool:
    """Whether the environment names a proxy for `url` (or its scheme is not http(s)): the client
    then goes through httpx, which speaks to proxies; the lean pool does not."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return True  # httpx reports what is wrong with it, as before
    proxies = getproxies_environment()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not proxy_bypass(parts.hostname)  # NO_PROXY, as httpx reads it


def _json(response: Reply, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise UnexpectedResponseError(f"{what}: response body is not JSON") from None


class _NoCookies(httpx.Cookies):
    """Cookies that are never kept: Plivo's API authenticates every request with Basic auth and
    sets none we need, and httpx wraps each response in urllib's request/response adapters to
    look for them (~2.5 % of a run's CPU in the profile)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _CookielessClient(httpx.AsyncClient):
    """An httpx client that keeps no cookies from its responses (see `_NoCookies`)."""

    _no_cookies = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        if cookies:
            raise ValueError("this client keeps no cookies")


class PlivoClient:
    """One account's client. Use `async with PlivoClient(...) as client:` (or `await aclose()`)."""

    def __init__(
        self,
        auth_id: str | None = None,
        auth_token: str | None = None,
        base_url: str | None = None,
        *,
        limiter: RateLimiter | None = None,
        timeout: float = 10.0,
        max_attempts: int | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        resolved_id = auth_id or _env("PLIVO_AUTH_ID")
        token = auth_token or _env("PLIVO_AUTH_TOKEN")
        if not resolved_id or not token:
            raise AuthenticationError(
                "no Plivo credentials: pass auth_id and auth_token or set PLIVO_AUTH_ID and "
                "PLIVO_AUTH_TOKEN"
            )
        self.auth_id = _path_id(resolved_id, "auth_id")
        self.base_url = (base_url or _env("PLIVO_API_URL") or DEFAULT_API_URL).rstrip("/")
        settings = load_settings() if limiter is None or retry_policy is None else None
        if limiter is None:
            assert settings is not None
            # the same limits every other caller of limiter_for reads (CALLERID_RATE_LIMIT_*)
            limiter = limiter_for(
                self.auth_id, settings.rate_limit_requests, settings.rate_limit_period_s
            )
        self.limiter = limiter
        basic = base64.b64encode(f"{self.auth_id}:{token}".encode()).decode()
        # Basic auth as a fixed header (what httpx.BasicAuth would compute on every request).
        headers = {
            "User-Agent": f"callerid-bulk/{__version__}",
            "Accept": "application/json",
            "Authorization": f"Basic {basic}",
        }

        # The lean HTTP/1.1 pool (_wire.py) unless a test gives an httpx transport or the
        # environment names a proxy for the API (httpx honours HTTP(S)_PROXY / NO_PROXY).
        lanes: list[httpx.AsyncClient] | WirePool
        if transport is None and not _proxied(self.base_url):
            lanes = WirePool(
                self.base_url,
                headers,
                timeout=timeout,
                size=pool_limits(self.limiter).max_connections or POOL_MAX,
                keepalive_expiry=KEEPALIVE_EXPIRY_S,
            )
        else:
            tls = httpx.create_ssl_context()  # one for all lanes (building one costs ~0.1 s)

            def http(
                limits: httpx.Limits, via: httpx.AsyncBaseTransport | None
            ) -> httpx.AsyncClient:
                return _CookielessClient(
                    base_url=self.base_url,
                    timeout=httpx.Timeout(timeout),
                    headers=headers,
                    limits=limits,
                    transport=via,
                    verify=tls,
                )

            # Lanes of a few connections each, sized from the limiter's concurrency
            # (_transport.py); a transport given (tests) serves one client: a transport is
            # closed with its client.
            lanes = (
                [http(limits, None) for limits in lane_limits(self.limiter)]
                if transport is None
                else [http(pool_limits(self.limiter), transport)]
            )
        # An explicit `max_attempts` overrides the policy's; None keeps the policy's (default 5).
        if retry_policy is None:
            assert settings is not None
            retry_policy = RetryPolicy(rate_limited_deadline_s=settings.rate_limited_deadline_s)
        policy = retry_policy
        if max_attempts is not None:
            policy = replace(policy, max_attempts=max_attempts)
        self._transport = Transport(lanes, self.limiter, policy, secrets=(token, basic))
        self._root = f"/v1/Account/{self.auth_id}/VerifiedCallerId"

    def __repr__(self) -> str:
        return f"PlivoClient(auth_id={self.auth_id!r}, base_url={self.base_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def initiate(
        self,
        phone_number: str,
        alias: str | None = None,
        channel: Channel | str = Channel.SMS,
        subaccount: str | None = None,
        *,
        send_by: float | None = None,
    ) -> Initiation:
        """Ask Plivo to send an OTP to `phone_number`. Never sent twice (see module docstring).

        `send_by` (a `time.monotonic()` value): not sent at all after it (`NotSentError`)."""
        digits = _digits(phone_number)
        try:
            channel_value = Channel(str(channel).lower())
        except ValueError:
            raise ValueError(f"channel must be 'sms' or 'call', got {channel!r}") from None
        body: dict[str, str] = {"phone_number": f"+{digits}", "channel": channel_value.value}
        if alias:
            body["alias"] = alias
        if subaccount:
            body["subaccount"] = _path_id(subaccount, "subaccount")
        response = await self._transport.send(
            "POST",
            f"{self._root}/",
            json=body,
            repeatable=False,
            phone_number=f"+{digits}",
            send_by=send_by,
        )
        try:
            return Initiation.from_api(f"+{digits}", _json(response, "initiate"))
        except UnexpectedResponseError as exc:
            # A 2xx means the OTP went out, but without its uuid nobody can complete it.
            raise OutcomeUnknownError(
                f"initiate for +{digits} succeeded without a usable answer ({exc.message})",
                status_code=response.status_code,
                phone_number=f"+{digits}",
            ) from None

    async def complete(
        self,
        verification_uuid: str,
        otp: str,
        *,
        phone_number: str | None = None,
        send_by: float | None = None,
    ) -> CallerId:
        """Submit the OTP of a verification. Pass `phone_number` so a retried submission whose
        first attempt went unanswered can be resolved by a GET (see module docstring). With
        `send_by` (a `time.monotonic()` value) no attempt goes out after it (`NotSentError`)."""
        uuid = _path_id(verification_uuid, "verification_uuid")
        if not isinstance(otp, str) or not _OTP_RE.fullmatch(otp):
            raise ValueError("otp must be a string of 4 to 8 digits")  # never echo the code
        trace = RequestTrace()
        try:
            response = await self._transport.send(
                "POST",
                f"{self._root}/Verification/{uuid}/",
                json={"otp": otp},
                priority=Priority.HIGH,
                trace=trace,
                phone_number=phone_number,
                send_by=send_by,
            )
        except (NotFoundError, RequestRejectedError) as exc:
            if not trace.unanswered_attempts:
                raise
            return await self._resolve_completion(exc, uuid, phone_number)
        return CallerId.from_api(_json(response, "complete"))

    async def _resolve_completion(
        self, error: PlivoError, uuid: str, phone_number: str | None
    ) -> CallerId:
        if phone_number is None:
            raise OutcomeUnknownError(
                f"complete of verification {uuid}: an unanswered attempt may have succeeded "
                f"before this answer ({error.message}); GET the number to find out",
                status_code=error.status_code,
                api_message=error.api_message,
            ) from None
        try:
            return await self.get(phone_number)
        except NotFoundError:
            raise error from None

    async def get(self, phone_number: str) -> CallerId:
        digits = _digits(phone_number)
        response = await self._transport.send(
            "GET", f"{self._root}/{digits}/", phone_number=f"+{digits}"
        )
        return CallerId.from_api(_json(response, "get"))

    async def update(
        self, phone_number: str, alias: str | None = None, subaccount: str | None = None
    ) -> CallerId:
        digits = _digits(phone_number)
        body: dict[str, str] = {}
        if alias is not None:
            body["alias"] = alias
        if subaccount is not None:
            body["subaccount"] = _path_id(subaccount, "subaccount")
        if not body:
            raise ValueError("update needs an alias or a subaccount")
        response = await self._transport.send(
            "POST", f"{self._root}/{digits}/", json=body, phone_number=f"+{digits}"
        )
        return CallerId.from_api(_json(response, "update"))

    async def delete(self, phone_number: str, *, missing_ok: bool = False) -> None:
        digits = _digits(phone_number)
        trace = RequestTrace()
        try:
            await self._transport.send(
                "DELETE", f"{self._root}/{digits}/", trace=trace, phone_number=f"+{digits}"
            )
        except NotFoundError:
            if missing_ok or trace.unanswered_attempts:
                return  # gone: by an earlier unanswered attempt of ours, or never there
            raise

    async def list_page(
        self,
        limit: int = PAGE_SIZE,
        offset: int = 0,
        *,
        country: str | None = None,
        subaccount: str | None = None,
        alias: str | None = None,
    ) -> Page:
        if not 1 <= limit <= PAGE_SIZE:
            raise ValueError(f"limit must be 1..{PAGE_SIZE}, got {limit}")
        if offset < 0:
            raise ValueError(f"offset must not be negative, got {offset}")
        params: dict[str, str | int] = {"limit": limit, "offset": offset}
        for key, value in (("country", country), ("subaccount", subaccount), ("alias", alias)):
            if value:
                params[key] = value
        response = await self._transport.send("GET", f"{self._root}/", params=params)
        return Page.from_api(_json(response, "list"), limit=limit, offset=offset)

    async def list(
        self,
        country: str | None = None,
        subaccount: str | None = None,
        alias: str | None = None,
    ) -> AsyncIterator[CallerId]:
        """Every caller ID matching the filters, page by page (20 a page), by offset.

        Pages are walked by `offset += limit` until `total_count` (not by following `next`). A
        number seen twice (the list shifted under us while paging) is yielded once.
        """
        seen: set[str] = set()
        offset = 0
        while True:
            page = await self.list_page(
                PAGE_SIZE, offset, country=country, subaccount=subaccount, alias=alias
            )
            for item in page.items:
                if item.phone_number not in seen:
                    seen.add(item.phone_number)
                    yield item
            offset += len(page.items)
            if not page.items or offset >= page.total_count:
                return
