"""Phone numbers as the sandbox sees them: E.164 in, E.164 out; the country from the number."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

import phonenumbers


def parse_number(raw: str | None) -> str | None:
    """E.164 for a valid number given with or without `+` (or as `%2B`), else None.

    Paths carry bare digits (`14155551234`) as often as `+14155551234`; bodies carry `+`. A query
    string turns an unencoded `+` into a space, hence the strip.
    """
    parsed = _valid(raw)
    if parsed is None:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _valid(raw: str | None) -> phonenumbers.PhoneNumber | None:
    """The parsed number of `raw` if it is a valid number (see `parse_number`), else None."""
    if not raw:
        return None
    text = unquote(str(raw)).strip()
    digits = text[1:] if text.startswith("+") else text
    if not digits.isdigit():
        return None
    try:
        parsed = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return None
    return parsed if phonenumbers.is_valid_number(parsed) else None


@dataclass(frozen=True)
class NumberFacts:
    e164: str
    country: str  # as `country_of`
    fixed_line: bool  # as `is_fixed_line`


def number_facts(raw: str | None) -> NumberFacts | None:
    """`parse_number`, `country_of` and `is_fixed_line` from one parse (an initiate needs all
    three: parsing is most of its cost), or None for what `parse_number` refuses."""
    parsed = _valid(raw)
    if parsed is None:
        return None
    region = phonenumbers.region_code_for_number(parsed)
    kind = phonenumbers.number_type(parsed)
    return NumberFacts(
        e164=phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164),
        country="" if region in (None, "001", "ZZ") else str(region),
        fixed_line=kind == phonenumbers.PhoneNumberType.FIXED_LINE,
    )


def country_of(e164: str) -> str:
    """Two-letter ISO code, or "" when the number belongs to no single region (Plivo sends "")."""
    region = phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))
    return "" if region in (None, "001", "ZZ") else str(region)


def is_fixed_line(e164: str) -> bool:
    """phonenumbers calls it a fixed line (not FIXED_LINE_OR_MOBILE): it cannot receive an SMS."""
    number = phonenumbers.parse(e164, None)
    return bool(phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.FIXED_LINE)
