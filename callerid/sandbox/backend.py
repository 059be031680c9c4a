"""The sandbox Verified Caller ID API: one method per operation, semantics of plivo-api.md §0.

Every operation takes the auth id the request was made with (`account`: main account or a
subaccount) and raises a `SandboxError` (status + message) on refusal. Choices where §0 is silent:

* wrong OTP: "invalid otp" for the 1st-3rd wrong code; once 3 were wrong the verification is locked
  and every further submission (even the right code) gets "maximum otp attempts exceeded".
* expiry is checked before the code: after 15 minutes any submission gets "verification expired".
* a verification replaced by a newer initiate is gone: 404 "verification not found".
* a number is unique across the main account and its subaccounts: initiating a number listed
  anywhere in the account is 400 "phone number is already verified"; re-submitting the code of a
  completed verification answers the same while the caller ID exists.
* an invalid number in a path is a lookup that finds nothing: 404 "not found".
* `update` with "" (absent) subaccount leaves the subaccount unchanged.
* the rate limit (default 300 requests in any 5 s) is account-wide, as Plivo documents it: requests
  made with a subaccount's credentials count in the main account's one rolling window, and a full
  window answers 429 to the main account and every subaccount alike. (The client cannot tell a
  subaccount's parent from its auth id, so it keys its limiter by the auth id it is given: a
  process driving a main account and its subaccounts passes them all one limiter.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from callerid.sandbox.errors import BadRequestError, NotFoundError
from callerid.sandbox.models import (
    CallerId,
    Channel,
    Initiated,
    Page,
    SentOtp,
    Verification,
    VerificationState,
)
from callerid.sandbox.numbers import country_of, number_facts
from callerid.sandbox.state import (
    DEFAULT_AUTH_ID,
    DEFAULT_AUTH_TOKEN,
    DEFAULT_SUBACCOUNTS,
    MAX_PAGE,
    MAX_WRONG_OTPS,
    OTP_TTL,
    SANDBOX_INBOX_NUMBER,
    BackendState,
)

__all__ = [
    "DEFAULT_AUTH_ID",
    "DEFAULT_AUTH_TOKEN",
    "DEFAULT_SUBACCOUNTS",
    "MAX_WRONG_OTPS",
    "OTP_TTL",
    "SANDBOX_INBOX_NUMBER",
    "SandboxBackend",
]


def clean(value: Any) -> str | None:
    """A request value: `None` and `""` both mean absent (the Go SDK sends every key)."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _page_int(value: Any, name: str, default: int) -> int:
    text = clean(value)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise BadRequestError(f"{name} must be an integer") from None


class SandboxBackend(BackendState):
    def initiate(
        self,
        account: str,
        phone_number: str | None,
        alias: str | None = None,
        channel: str | None = None,
        subaccount: str | None = None,
    ) -> Initiated:
        raw = clean(phone_number)
        if raw is None:
            raise BadRequestError("phone_number is required")
        facts = number_facts(raw)
        if facts is None:
            raise BadRequestError("invalid phone number")
        number = facts.e164
        channel_text = (clean(channel) or Channel.SMS.value).lower()
        if channel_text not in {c.value for c in Channel}:
            raise BadRequestError("channel must be sms or call")
        with self._reading():
            owner = self._owner_subaccount(account, clean(subaccount))
            if number in self._callers:
                raise BadRequestError("phone number is already verified")
            older = self._verifications.get(self._pending.get(number, ""))
            if older is not None and older.state is VerificationState.PENDING:
                older.state = VerificationState.SUPERSEDED
            now = self.clock.now()
            verification = Verification(
                uuid=self.new_id(),
                phone_number=number,
                account=account,
                alias=clean(alias) or "",
                channel=Channel(channel_text),
                subaccount=owner or "",
                otp=self.random_digits(self.otp_digits),
                created_at=now,
                expires_at=now + OTP_TTL,
                country=facts.country,
            )
            self._verifications[verification.uuid] = verification
            self._pending[number] = verification.uuid
            self._number_stats(number).initiations += 1
            sent = SentOtp(
                phone_number=number,
                channel=verification.channel,
                otp=verification.otp,
                verification_uuid=verification.uuid,
                account=verification.subaccount or self.main_auth_id,
                sent_at=now,
                expires_at=verification.expires_at,
                reaches_phone=verification.channel is Channel.CALL or not facts.fixed_line,
            )
            self._record_sent(sent)
        for listener in list(self._listeners):
            listener(sent)
        return Initiated(
            verification_uuid=verification.uuid,
            phone_number=number,
            message=(f"Verification code is sent to number {number} which is valid for 15 minutes"),
        )

    def complete(self, account: str, verification_uuid: str, otp: str | None) -> CallerId:
        code = clean(otp)
        if code is None:
            raise BadRequestError("otp is required")
        with self._changing():
            found = self._verifications.get(verification_uuid)
            if (
                found is None
                or found.state is VerificationState.SUPERSEDED
                or not self._visible(account, found.subaccount)
            ):
                raise NotFoundError("verification not found")
            stats = self._number_stats(found.phone_number)
            stats.completion_attempts += 1
            if found.state is VerificationState.COMPLETED:
                if found.phone_number in self._callers:
                    raise BadRequestError("phone number is already verified")
                raise NotFoundError("verification not found")
            if found.wrong_attempts >= MAX_WRONG_OTPS:
                raise BadRequestError("maximum otp attempts exceeded")
            now = self.clock.now()
            if now >= found.expires_at:
                raise BadRequestError("verification expired")
            if code != found.otp:
                found.wrong_attempts += 1
                raise BadRequestError("invalid otp")
            if found.phone_number in self._callers:
                raise BadRequestError("phone number is already verified")
            found.state = VerificationState.COMPLETED
            if self._pending.get(found.phone_number) == found.uuid:
                del self._pending[found.phone_number]
            stats.completions += 1
            caller = CallerId(
                phone_number=found.phone_number,
                alias=found.alias,
                country=(
                    found.country if found.country is not None else country_of(found.phone_number)
                ),
                subaccount=found.subaccount,
                verification_uuid=found.uuid,
                channel=found.channel,
                created_at=now,
                modified_at=now,
                created_extra_ns=self._rng.randrange(1000),
            )
            self._store(caller)
            return caller

    def get(self, account: str, phone_number: str) -> CallerId:
        with self._reading():
            return self._lookup(account, phone_number)

    def list(
        self,
        account: str,
        country: str | None = None,
        subaccount: str | None = None,
        alias: str | None = None,
        limit: int | str | None = None,
        offset: int | str | None = None,
    ) -> Page:
        size = _page_int(limit, "limit", MAX_PAGE)
        skip = _page_int(offset, "offset", 0)
        if not 1 <= size <= MAX_PAGE:
            raise BadRequestError(f"limit must be between 1 and {MAX_PAGE}")
        if skip < 0:
            raise BadRequestError("offset must not be negative")
        want_country = (clean(country) or "").upper()
        want_sub, want_alias = clean(subaccount), clean(alias)
        if account != self.main_auth_id:  # a subaccount sees its own caller IDs only
            if want_sub not in (None, account):
                return Page((), size, skip, 0)
            want_sub = account
        with self._reading():
            # the narrowest view; the other filters (rarely combined) then scan that view only
            if want_sub is not None:
                view = self._view("sub", want_sub)
            elif want_country:
                view = self._view("country", want_country)
            else:
                view = self._view("all", "")
            rest: list[Callable[[CallerId], bool]] = []
            if want_sub is not None and want_country:
                rest.append(lambda c: c.country.upper() == want_country)
            if want_alias is not None:
                rest.append(lambda c: c.alias == want_alias)
            if not rest:  # newest first, like Plivo: the page counts back from the view's end
                end = max(len(view) - skip, 0)
                keys = view[max(end - size, 0) : end][::-1]
                objects = tuple(self._callers[k[2]] for k in keys)
                return Page(objects, size, skip, len(view))
            matching = [
                c
                for c in (self._callers[k[2]] for k in reversed(view))
                if all(test(c) for test in rest)
            ]
        return Page(tuple(matching[skip : skip + size]), size, skip, len(matching))

    def update(
        self,
        account: str,
        phone_number: str,
        alias: str | None = None,
        subaccount: str | None = None,
    ) -> CallerId:
        with self._changing():
            caller = self._lookup(account, phone_number)
            owner = self._owner_subaccount(account, clean(subaccount))
            new_alias = clean(alias)
            changes: dict[str, Any] = {}
            if new_alias is not None and new_alias != caller.alias:
                changes["alias"] = new_alias
            if owner is not None and owner != caller.subaccount:
                changes["subaccount"] = owner
            if changes:
                caller = replace(caller, modified_at=self.clock.now(), **changes)
                self._store(caller)
            return caller

    def delete(self, account: str, phone_number: str) -> None:
        with self._changing():
            caller = self._lookup(account, phone_number)
            self._drop(caller.phone_number)
