"""Plain records the sandbox backend keeps and returns, and their Plivo-shaped JSON.

Timestamps imitate Plivo: a just-completed verification answers with nanosecond precision
(`2023-09-25T13:10:39.968133341Z`, a Go `time.Time` straight from memory), while get/list answer
what the database kept: microseconds, trailing zeros trimmed (`2023-09-25T14:40:38.68729Z`, Go's
RFC3339Nano). Clients must parse both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class Channel(StrEnum):
    SMS = "sms"
    CALL = "call"


class VerificationState(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    SUPERSEDED = "superseded"  # a newer initiate for the same number replaced it


def format_timestamp(moment: datetime, extra_ns: int | None = None) -> str:
    """RFC 3339 in UTC with `Z`: 9 digits when `extra_ns` is given, else trimmed microseconds."""
    moment = moment.astimezone(UTC)
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if extra_ns is not None:
        return f"{base}.{moment.microsecond:06d}{extra_ns % 1000:03d}Z"
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    return f"{base}.{fraction}Z" if fraction else f"{base}Z"


@dataclass(frozen=True)
class SentOtp:
    """One OTP the sandbox 'sent' to a phone (by SMS or by a voice call)."""

    phone_number: str
    channel: Channel
    otp: str = field(repr=False)
    verification_uuid: str
    account: str  # auth id owning the verification (main account or subaccount)
    sent_at: datetime
    expires_at: datetime
    # False for an SMS to a fixed line: Plivo sent it, no phone ever shows it (the sandbox keeps
    # it in /_sandbox/messages as its own record, never delivers it)
    reaches_phone: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "phone_number": self.phone_number,
            "channel": self.channel.value,
            "otp": self.otp,
            "verification_uuid": self.verification_uuid,
            "sent_at": format_timestamp(self.sent_at),
            "expires_at": format_timestamp(self.expires_at),
            "reaches_phone": self.reaches_phone,
        }


@dataclass(frozen=True)
class Initiated:
    verification_uuid: str
    phone_number: str
    message: str


@dataclass(frozen=True)
class CallerId:
    """A verified caller ID as the account lists it."""

    phone_number: str
    alias: str
    country: str
    subaccount: str  # "" for the main account's own numbers
    verification_uuid: str
    channel: Channel
    created_at: datetime
    modified_at: datetime
    created_extra_ns: int = 0  # sub-microsecond digits, shown only right after completion

    def completed_json(self) -> dict[str, Any]:
        """The body of a successful complete (fixture verifyCalleridVerifyResponse.json)."""
        return {
            "alias": self.alias,
            "channel": self.channel.value,
            "country": self.country,
            "created_at": format_timestamp(self.created_at, self.created_extra_ns),
            "phone_number": self.phone_number,
            "subaccount": self.subaccount,
            "verification_uuid": self.verification_uuid,
        }

    def get_json(self) -> dict[str, Any]:
        """The body of get/update (fixture verifyCalleridGetResponse.json), without api_id."""
        return {
            "alias": self.alias,
            "country": self.country,
            "created_at": format_timestamp(self.created_at),
            "modified_at": format_timestamp(self.modified_at),
            "phone_number": self.phone_number,
            "subaccount": self.subaccount,
            "verification_uuid": self.verification_uuid,
        }

    def list_json(self, auth_id: str) -> dict[str, Any]:
        """One object of a list page: no api_id, no channel, a resource_uri with bare digits."""
        body = self.get_json()
        body["resource_uri"] = f"/v1/Account/{auth_id}/VerifiedCallerId/{self.phone_number[1:]}"
        return body


@dataclass(frozen=True)
class Page:
    objects: tuple[CallerId, ...]
    limit: int
    offset: int
    total_count: int


@dataclass
class Verification:
    """Backend-internal, mutable: one initiate and what has happened to it since."""

    uuid: str
    phone_number: str
    account: str
    alias: str
    channel: Channel
    subaccount: str
    otp: str = field(repr=False)
    created_at: datetime
    expires_at: datetime
    wrong_attempts: int = 0
    state: VerificationState = VerificationState.PENDING
    country: str | None = None  # of the number, found at the initiate (None: not known)


@dataclass
class NumberStats:
    initiations: int = 0
    completion_attempts: int = 0
    completions: int = 0  # successful ones

    def to_json(self) -> dict[str, int]:
        return {
            "initiations": self.initiations,
            "completion_attempts": self.completion_attempts,
            "completions": self.completions,
        }
