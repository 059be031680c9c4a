"""The sandbox backend's state: accounts, counters, the rolling window and test helpers.

`backend.SandboxBackend` adds the six API operations on top. Plain objects, no web imports.
Thread-safe: the HTTP app, the phone network thread and tests all call in.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from hmac import compare_digest
from pathlib import Path
from typing import Any

from callerid.clock import Clock, OffsetClock
from callerid.sandbox.callers import StoredCallers
from callerid.sandbox.errors import (
    BadRequestError,
    NotFoundError,
    TooManyRequestsError,
    UnauthorizedError,
)
from callerid.sandbox.models import CallerId, Channel, NumberStats, SentOtp, Verification
from callerid.sandbox.numbers import country_of, parse_number
from callerid.sandbox.persistence import AccountFile
from callerid.sandbox.ratelimit import RollingWindowLimiter

DEFAULT_AUTH_ID = "MASANDBOXACCOUNT0001"  # the SDK insists on MA/SA + 18 characters
DEFAULT_AUTH_TOKEN = "sandbox-auth-token"
DEFAULT_SUBACCOUNTS = {  # the embedded sandbox account's; elsewhere only when asked
    "SASANDBOXSUBACCT0001": "sandbox-subaccount-token-1",
    "SASANDBOXSUBACCT0002": "sandbox-subaccount-token-2",
}
SANDBOX_INBOX_NUMBER = "+15005550100"
OTP_TTL = timedelta(minutes=15)
MAX_WRONG_OTPS = 3
MAX_PAGE = 20

Listener = Callable[[SentOtp], None]


class BackendState(StoredCallers):
    def __init__(
        self,
        clock: Clock | None = None,
        seed: int | None = None,
        otp_digits: int = 4,
        rate: tuple[int, float] = (300, 5.0),
        auth_id: str = DEFAULT_AUTH_ID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        subaccounts: Mapping[str, str] | None = None,
        state_file: Path | str | None = None,
    ) -> None:
        """`subaccounts` (auth id -> token): created only when asked, never by default (a
        sandbox with a private main token must not open well-known subaccount doors);
        `DEFAULT_SUBACCOUNTS` are the two well-known ones the embedded sandbox account has.
        `state_file`: the account (caller IDs, subaccounts) lives in this file, shared with
        every other process that opens it (see persistence.py); created when absent."""
        if not 4 <= otp_digits <= 8:
            raise ValueError("otp_digits must be between 4 and 8")
        self.clock: Clock = clock or OffsetClock()
        self.otp_digits = otp_digits
        self.main_auth_id = auth_id
        self._tokens: dict[str, str] = {auth_id: auth_token, **(subaccounts or {})}
        self._seed = seed
        self._limiter = RollingWindowLimiter(*rate)
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self._file: AccountFile | None = None
        self.reset()
        if state_file is not None:
            self._attach(AccountFile(state_file))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(auth_id={self.main_auth_id!r}, otp_digits={self.otp_digits})"

    # -- accounts, requests, helpers for tests ------------------------------------------------

    def add_subaccount(self, auth_id: str, token: str) -> None:
        with self._changing():
            if self._tokens.get(auth_id) != token:
                self._tokens[auth_id] = token
                self._record({"op": "subaccount", "auth_id": auth_id, "token": token})

    def token_for(self, auth_id: str) -> str:
        return self._tokens[auth_id]

    @property
    def subaccounts(self) -> tuple[str, ...]:
        return tuple(a for a in self._tokens if a != self.main_auth_id)

    def subscribe(self, listener: Listener) -> None:
        """Call `listener(sent_otp)` after every initiate (the phone network listens here)."""
        self._listeners.append(listener)

    def reset(self) -> None:
        """Forget every caller ID, verification, message and counter (accounts stay)."""
        with self._changing():
            self._rng = random.Random(self._seed)
            # api_ids draw from their own stream, so that reads never shift the OTPs and uuids
            self._api_rng = random.Random(None if self._seed is None else f"api-{self._seed}")
            self._clear_callers()
            self._record({"op": "clear"})
            self._verifications: dict[str, Verification] = {}
            self._pending: dict[str, str] = {}  # number -> uuid of its pending verification
            self._messages: list[SentOtp] = []
            self._messages_by_number: dict[str, list[SentOtp]] = {}
            self._numbers: dict[str, NumberStats] = {}
            self._total_requests = 0
            self._rate_limited = 0
            self._faults_injected = 0
            self._limiter.reset()

    def new_id(self) -> str:
        """A uuid4 drawn from the seeded generator (verification uuids, api_ids, message uuids)."""
        with self._lock:
            return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def new_api_id(self) -> str:
        with self._lock:
            return str(uuid.UUID(int=self._api_rng.getrandbits(128), version=4))

    def random_digits(self, count: int) -> str:
        with self._lock:
            return "".join(str(self._rng.randrange(10)) for _ in range(count))

    def record_request(self) -> None:
        with self._lock:
            self._total_requests += 1

    def record_fault(self) -> None:
        with self._lock:
            self._faults_injected += 1

    def begin_request(self, auth_id: str, username: str | None, password: str | None) -> None:
        """Authenticate one API request, then count it against the account's rolling window."""
        self.authenticate(auth_id, username, password)
        self.admit(auth_id)

    def authenticate(self, auth_id: str, username: str | None, password: str | None) -> None:
        """Basic auth must name the path's auth id with its token (401 otherwise)."""
        with self._reading():  # a subaccount may have been added by another process
            token = self._tokens.get(auth_id)
        if (
            token is None
            or username != auth_id
            or password is None
            or not compare_digest(password.encode(), token.encode())
        ):
            raise UnauthorizedError("authentication failed")

    def admit(self, auth_id: str) -> None:
        """Count an authenticated request against the account's rolling window (429 if full).

        The window is account-wide: every auth id here is the main account or one of its
        subaccounts, and a subaccount's requests count in its parent's window."""
        with self._lock:
            if not self._limiter.admit(self.main_auth_id, self.clock.now()):
                self._rate_limited += 1
                raise TooManyRequestsError("too many requests")

    def seed_verified(
        self,
        phone_number: str,
        alias: str | None = None,
        subaccount: str | None = None,
        country: str | None = None,
    ) -> CallerId:
        """Put a caller ID straight into the list, as if it had been verified earlier."""
        number = parse_number(phone_number)
        if number is None:
            raise BadRequestError("invalid phone number")
        if subaccount and subaccount not in self.subaccounts:
            raise BadRequestError("invalid subaccount")
        with self._changing():
            now = self.clock.now()
            caller = CallerId(
                phone_number=number,
                alias=alias or "",
                country=country if country is not None else country_of(number),
                subaccount=subaccount or "",
                verification_uuid=self.new_id(),
                channel=Channel.SMS,
                created_at=now,
                modified_at=now,
            )
            self._store(caller)
            return caller

    def otp_for(self, verification_uuid: str) -> str:
        with self._lock:
            verification = self._verifications.get(verification_uuid)
            if verification is None:
                raise NotFoundError("verification not found")
            return verification.otp

    def verification(self, verification_uuid: str) -> Verification | None:
        with self._lock:
            found = self._verifications.get(verification_uuid)
            return replace(found) if found else None

    def messages(self, phone_number: str | None = None) -> list[SentOtp]:
        """Every OTP sent (to one number, or to all), oldest first."""
        with self._lock:
            if not phone_number:
                return list(self._messages)
            number = parse_number(phone_number)
            return list(self._messages_by_number.get(number, ())) if number else []

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total_requests": self._total_requests,
                "rate_limited": self._rate_limited,
                "faults_injected": self._faults_injected,
                "numbers": {n: s.to_json() for n, s in sorted(self._numbers.items())},
            }

    # -- internals ------------------------------------------------------------------------------

    def _record_sent(self, sent: SentOtp) -> None:
        self._messages.append(sent)
        self._messages_by_number.setdefault(sent.phone_number, []).append(sent)

    def _number_stats(self, number: str) -> NumberStats:
        return self._numbers.setdefault(number, NumberStats())

    def _visible(self, account: str, subaccount: str) -> bool:
        return account == self.main_auth_id or subaccount == account

    def _owner_subaccount(self, account: str, requested: str | None) -> str | None:
        """The subaccount a caller ID will belong to, or None to leave it unchanged.

        Only main-account credentials may name a subaccount; a subaccount's own requests always
        belong to that subaccount (naming itself is tolerated, naming another is refused).
        """
        if account != self.main_auth_id:
            if requested not in (None, account):
                raise BadRequestError("subaccount can only be set with main account credentials")
            return account
        if requested is None:
            return None
        if requested not in self.subaccounts:
            raise BadRequestError("invalid subaccount")
        return requested

    def _lookup(self, account: str, phone_number: str) -> CallerId:
        number = parse_number(phone_number)
        caller = self._callers.get(number) if number else None
        if caller is None or not self._visible(account, caller.subaccount):
            raise NotFoundError("not found")
        return caller
