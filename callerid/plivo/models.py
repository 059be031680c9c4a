"""Typed results of the Verified Caller ID API (plivo-api.md §1.4), parsed from its JSON.

Plivo sends `""` for absent optional strings (`subaccount`, `country`, `channel`); they become
`None` here so callers test one thing. Timestamps are RFC 3339 with up to 9 fractional digits
(`2023-09-25T13:10:39.968133341Z`) or, per the object page, `YYYY-MM-DD HH:MM:SS`; both parse to
aware UTC datetimes (nanoseconds truncated to microseconds).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from callerid.plivo.errors import UnexpectedResponseError


class Channel(StrEnum):
    SMS = "sms"
    CALL = "call"


_TIMESTAMP_RE = re.compile(
    r"^(?P<base>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2})"
    r"(?:\.(?P<frac>\d{1,9}))?"
    r"(?P<tz>Z|z|[+-]\d{2}:?\d{2})?$"
)


def parse_timestamp(value: object) -> datetime | None:
    """Parse a Plivo timestamp; `None`/`""` -> None; anything else malformed -> ValueError."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"timestamp must be a string, got {type(value).__name__}")
    match = _TIMESTAMP_RE.match(value.strip())
    if match is None:
        raise ValueError(f"unrecognised timestamp {value!r}")
    frac = (match["frac"] or "").ljust(6, "0")[:6]
    tz = match["tz"] or "+00:00"
    if tz in ("Z", "z"):
        tz = "+00:00"
    parsed = datetime.fromisoformat(f"{match['base'].replace(' ', 'T')}.{frac}{tz}")
    return parsed.astimezone(UTC)


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    return str(value)


def _req_str(data: Mapping[str, Any], key: str, what: str) -> str:
    value = _opt_str(data, key)
    if value is None:
        raise UnexpectedResponseError(f"{what} response has no {key!r}")
    return value


def _channel(value: str | None) -> Channel | None:
    if value is None:
        return None
    try:
        return Channel(value.lower())
    except ValueError:
        return None  # an unknown channel label is not worth failing a read for


@dataclass(frozen=True, slots=True)
class Initiation:
    """Answer to an initiate: the OTP is on its way to `phone_number`."""

    phone_number: str
    verification_uuid: str
    message: str | None
    api_id: str | None

    @classmethod
    def from_api(cls, phone_number: str, data: Mapping[str, Any]) -> Initiation:
        return cls(
            phone_number=phone_number,
            verification_uuid=_req_str(data, "verification_uuid", "initiate"),
            message=_opt_str(data, "message"),
            api_id=_opt_str(data, "api_id"),
        )


@dataclass(frozen=True, slots=True)
class CallerId:
    """A verified caller ID as complete/get/list/update return it."""

    phone_number: str
    alias: str | None = None
    country: str | None = None
    subaccount: str | None = None
    verification_uuid: str | None = None
    created_at: datetime | None = None
    modified_at: datetime | None = None
    channel: Channel | None = None
    resource_uri: str | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> CallerId:
        if not isinstance(data, Mapping):
            raise UnexpectedResponseError("caller ID is not a JSON object")
        try:
            created_at = parse_timestamp(data.get("created_at"))
            modified_at = parse_timestamp(data.get("modified_at"))
        except ValueError as exc:
            raise UnexpectedResponseError(f"caller ID has a bad timestamp: {exc}") from None
        return cls(
            phone_number=_req_str(data, "phone_number", "caller ID"),
            alias=_opt_str(data, "alias"),
            country=_opt_str(data, "country"),
            subaccount=_opt_str(data, "subaccount"),
            verification_uuid=_opt_str(data, "verification_uuid"),
            created_at=created_at,
            modified_at=modified_at,
            channel=_channel(_opt_str(data, "channel")),
            resource_uri=_opt_str(data, "resource_uri"),
        )


@dataclass(frozen=True, slots=True)
class Page:
    """One page of the list endpoint; `total_count` is the server's count across all pages."""

    items: tuple[CallerId, ...]
    limit: int
    offset: int
    total_count: int
    next: str | None = None
    previous: str | None = None

    @property
    def has_more(self) -> bool:
        return bool(self.items) and self.offset + len(self.items) < self.total_count

    @classmethod
    def from_api(cls, data: Mapping[str, Any], *, limit: int, offset: int) -> Page:
        meta = data.get("meta") if isinstance(data, Mapping) else None
        objects = data.get("objects") if isinstance(data, Mapping) else None
        if not isinstance(meta, Mapping) or not isinstance(objects, list):
            raise UnexpectedResponseError("list response lacks 'meta' or 'objects'")
        try:
            total = int(meta.get("total_count", len(objects)))
            page_limit = int(meta.get("limit") or limit)
            page_offset = int(meta.get("offset") or offset)
        except (TypeError, ValueError):
            raise UnexpectedResponseError("list response has a malformed 'meta'") from None
        return cls(
            items=tuple(CallerId.from_api(obj) for obj in objects),
            limit=page_limit,
            offset=page_offset,
            total_count=total,
            next=_opt_str(meta, "next"),
            previous=_opt_str(meta, "previous"),
        )
