"""The non-phone cells of a row: country, channel, alias, subaccount.

Each check returns the clean value or a `Failure`; run-level defaults are checked once, up front,
with the same rules, and raise `IngestOptionError` instead.
"""

from __future__ import annotations

import re

import phonenumbers as pn

from callerid.ingest.models import Channel, IngestOptionError, RejectReason
from callerid.ingest.normalise import Failure

ALIAS_MAX = 64  # our limit: Plivo documents none, and a long alias is almost always a pasted note
_SUBACCOUNT = re.compile(r"SA[A-Z0-9]{18}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc
_CHANNELS = {channel.value: channel for channel in Channel}
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


def parse_channel(cell: str, default: Channel) -> Channel | Failure:
    text = cell.strip().lower()
    if not text:
        return default
    channel = _CHANNELS.get(text)
    if channel is not None:
        return channel
    return Failure(RejectReason.BAD_CHANNEL, f"channel {cell.strip()!r} is neither sms nor call")


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


def check_defaults(
    region: str, channel: str, subaccount: str | None
) -> tuple[str, Channel, str | None]:
    """Validate run-level defaults; a bad one stops the run before any row is read."""
    parsed_region = parse_country(region)
    if not isinstance(parsed_region, str):
        raise IngestOptionError(f"default region {region!r} is not a supported ISO 3166 code")
    parsed_channel = parse_channel(channel, Channel.SMS)
    if isinstance(parsed_channel, Failure) or not channel.strip():
        raise IngestOptionError(f"default channel {channel!r} is neither sms nor call")
    parsed_subaccount = parse_subaccount(subaccount or "", None)
    if isinstance(parsed_subaccount, Failure):
        raise IngestOptionError(parsed_subaccount.message)
    return parsed_region, parsed_channel, parsed_subaccount
