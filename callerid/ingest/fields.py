"""The non-phone cells of a row: country, channel, alias, subaccount, owner.

Each check returns the clean value or a `Failure`; run-level defaults are checked once, up front,
with the same rules, and raise `IngestOptionError` instead.
"""

from __future__ import annotations

import re

import phonenumbers as pn

from callerid.ingest.models import (
    AUTO_CHANNEL,
    Channel,
    IngestOptionError,
    NumberType,
    RejectReason,
)
from callerid.ingest.normalise import Failure

ALIAS_MAX = 64  # our limit: Plivo documents none, and a long alias is almost always a pasted note
_SUBACCOUNT = re.compile(r"SA[A-Z0-9]{18}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc
# `auto` maps to None: the channel is chosen by number type once the number is known.
_CHANNELS: dict[str, Channel | None] = {
    **{channel.value: channel for channel in Channel},
    AUTO_CHANNEL: None,
}
_REGIONS = frozenset(pn.SUPPORTED_REGIONS)
# Not ISO 3166, but what people type for the United Kingdom.
_REGION_ALIASES = {"UK": "GB"}


def parse_country(cell: str) -> str | Failure | None:
    """ISO alpha-2 (any case) or a calling code (`44`, `+44`); None when the cell is empty."""
    text = cell.strip()
    if not text:
        return None
    code = text.upper()
    code = _REGION_ALIASES.get(code, code)
    if code in _REGIONS:
        return code
    digits = code.removeprefix("+")
    if digits.isascii() and digits.isdigit() and len(digits) <= 3:
        # A calling code names a country group; its main region parses national numbers of all.
        region = pn.region_code_for_country_code(int(digits))
        if region in _REGIONS:
            return str(region)
    return Failure(
        RejectReason.INVALID_COUNTRY,
        f"country {text!r} is not a two-letter ISO 3166 code (like US, GB, DE) or calling code",
    )


def parse_channel(cell: str, default: Channel | None) -> Channel | Failure | None:
    """`sms`, `call`, or None for `auto` (see `resolve_channel`); empty: the default."""
    text = cell.strip().lower()
    if not text:
        return default
    if text in _CHANNELS:
        return _CHANNELS[text]
    return Failure(RejectReason.BAD_CHANNEL, f"channel {cell.strip()!r} is none of sms, call, auto")


def resolve_channel(channel: Channel | None, number_type: NumberType) -> Channel:
    """`auto` (None): a voice call for a fixed line, which cannot receive an SMS; an SMS for
    mobiles, fixed-line-or-mobile (most of North America) and every other type."""
    if channel is not None:
        return channel
    return Channel.CALL if number_type == NumberType.FIXED_LINE else Channel.SMS


def parse_alias(cell: str) -> str | Failure | None:
    text = cell.strip()
    if not text:
        return None
    if _CONTROL.search(text):
        return Failure(RejectReason.BAD_ALIAS, "alias contains control characters")
    if len(text) > ALIAS_MAX:
        return Failure(
            RejectReason.BAD_ALIAS, f"alias has {len(text)} characters; at most {ALIAS_MAX}"
        )
    return text


def parse_subaccount(cell: str, default: str | None) -> str | Failure | None:
    text = cell.strip()
    if not text:
        return default
    if _SUBACCOUNT.fullmatch(text):
        return text
    return Failure(
        RejectReason.BAD_SUBACCOUNT,
        f"subaccount {text!r} is not a Plivo subaccount auth id (SA and 18 letters or digits)",
    )


_EMAIL_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_EMAIL_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# A dot-atom local part and a DNS name with a top-level label of two or more characters: what
# an SMTP server takes without quoting. Quoted local parts and IP literals are refused.
_EMAIL = re.compile(rf"({_EMAIL_LOCAL})@((?:{_EMAIL_LABEL}\.)+[A-Za-z][A-Za-z0-9-]*[A-Za-z0-9])")
# `Ada Lovelace <ada@example.com>`, as a mail program copies an address.
_NAMED_ADDRESS = re.compile(r"[^<>]*<([^<>]*)>")
_ADDRESS_SEPARATORS = re.compile(r"[,;\s]+")


def parse_owner(cell: str, default: str | None) -> str | Failure | None:
    """One email address (`local@domain`, domain lower-cased), `Name <address>` accepted;
    empty: the default."""
    text = cell.strip()
    if not text:
        return default
    named = _NAMED_ADDRESS.fullmatch(text)
    address = named.group(1).strip() if named else text
    match = _EMAIL.fullmatch(address)
    if match is not None and len(match.group(1)) <= 64 and len(address) <= 254:
        return f"{match.group(1)}@{match.group(2).lower()}"
    parts = [part for part in _ADDRESS_SEPARATORS.split(text) if "@" in part]
    if len(parts) > 1:
        return Failure(
            RejectReason.BAD_OWNER,
            f"owner holds {len(parts)} addresses; give one owner per row",
        )
    return Failure(
        RejectReason.BAD_OWNER, f"owner {text!r} is not an email address (like ada@example.com)"
    )


def check_defaults(
    region: str, channel: str, subaccount: str | None, owner: str | None = None
) -> tuple[str, Channel | None, str | None, str | None]:
    """Validate run-level defaults; a bad one stops the run before any row is read. The
    channel comes back as None for `auto`."""
    parsed_region = parse_country(region)
    if not isinstance(parsed_region, str):
        raise IngestOptionError(f"default region {region!r} is not a supported ISO 3166 code")
    parsed_channel = parse_channel(channel, None)
    if isinstance(parsed_channel, Failure) or not channel.strip():
        raise IngestOptionError(f"default channel {channel!r} is none of sms, call, auto")
    parsed_subaccount = parse_subaccount(subaccount or "", None)
    if isinstance(parsed_subaccount, Failure):
        raise IngestOptionError(parsed_subaccount.message)
    parsed_owner = parse_owner(owner or "", None)
    if isinstance(parsed_owner, Failure):
        raise IngestOptionError(f"default owner: {parsed_owner.message}")
    return parsed_region, parsed_channel, parsed_subaccount, parsed_owner
