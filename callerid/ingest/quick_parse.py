"""Short cuts through `phonenumbers.parse` for the commonest cells: `+` then digits, and digits
written nationally.

`pn.parse` spends most of its time on what such a cell does not have (an exit code, letters, an
extension, other scripts' digits), and it was half of the ingest's run time. For `+44 20 7946 0958`,
`+1-415-555-2671` or `+4930901820` `parse_international` builds the same `PhoneNumber` directly
from phonenumbers' own country-code table; for `(020) 7946 0958` in GB `parse_national` strips the
national prefix with phonenumbers' own step. Wherever parse might decide differently (a national
prefix after a `+` country code, an exit code or the region's country code in front of a national
number), they decline and parse runs as usual. The tests compare them with parse on every region's
example numbers and on random input.
"""

from __future__ import annotations

import re

import phonenumbers as pn
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata, ValidationResult

# phonenumbers' own steps, so that the short cut cannot drift from parse (the version is locked,
# and the tests compare both on every region's examples and on random digits).
from phonenumbers.phonenumberutil import (
    _maybe_strip_national_prefix_carrier_code as _strip_national_prefix,
)
from phonenumbers.phonenumberutil import (
    _set_italian_leading_zeros_for_phone_number as _set_leading_zeros,
)
from phonenumbers.phonenumberutil import _test_number_length

# ASCII digits only: parse maps other scripts' digits first, and so must the prefix check.
_PLUS_DIGITS = re.compile(r"\+[1-9][0-9]{5,16}")  # parse's own bounds: an NSN of 2 to 17 digits
_NO_PREFIX = re.compile(r"(?!)")  # never matches: for countries without a national prefix
_ANYTHING = re.compile(r"")  # always matches: no metadata, so never take the short cut
_prefix_by_code: dict[int, re.Pattern[str]] = {}
_PUNCTUATION = str.maketrans("", "", " \t\n\r\x0b\x0c-.()")
_CODES = {str(code): code for code in COUNTRY_CODE_TO_REGION_CODE}
_NOT_STRIPPED = (
    ValidationResult.TOO_SHORT,
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
    ValidationResult.INVALID_LENGTH,
)


def parse_international(text: str) -> pn.PhoneNumber | None:
    """The number `pn.parse(text, any_region)` returns, or None to let it parse."""
    if not text.startswith("+"):
        return None
    # parse drops this punctuation between digits; `(0)` leaves a 0 that the prefix check catches.
    # Anything else left over (other spaces, letters) fails the pattern: parse decides then.
    compact = text.translate(_PUNCTUATION)
    if not _PLUS_DIGITS.fullmatch(compact):
        return None
    digits = compact[1:]
    for size in (1, 2, 3):
        code = _CODES.get(digits[:size])
        if code is not None:
            break
    else:
        return None
    national = digits[size:]
    if _national_prefix(code).match(national):
        return None
    number = pn.PhoneNumber(country_code=code, national_number=int(national))
    _set_leading_zeros(national, number)  # Italian-style leading zeros, as parse records them
    return number


def _national_prefix(code: int) -> re.Pattern[str]:
    """What parse would try to strip after the country code (the main region's metadata)."""
    pattern = _prefix_by_code.get(code)
    if pattern is None:
        region = pn.region_code_for_country_code(code)
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
        if metadata is None:
            pattern = _ANYTHING
        else:
            source = metadata.national_prefix_for_parsing
            pattern = re.compile(source) if source else _NO_PREFIX
        _prefix_by_code[code] = pattern
    return pattern


# Digits written the way national numbers are: (020) 7946 0958, 415-555-2671, 8 (912) 345-67-89.
_NATIONAL = re.compile(r"[0-9(][0-9 ().-]*")
_DIGITS = re.compile(r"[0-9]{3,17}")
_national_rules: dict[str, tuple[PhoneMetadata, re.Pattern[str], str] | None] = {}


def parse_national(text: str, region: str) -> pn.PhoneNumber | None:
    """The number `pn.parse(text, region)` returns for a nationally written cell, or None to let
    parse decide (an exit code or the region's own country code in front, odd characters, no such
    region, a length parse rejects). The national prefix is stripped by phonenumbers' own step."""
    if not _NATIONAL.fullmatch(text):
        return None
    digits = text.translate(_PUNCTUATION)
    rules = _rules_for(region)
    if rules is None or not _DIGITS.fullmatch(digits):
        return None
    metadata, exit_code, country_code = rules
    if exit_code.match(digits) or digits.startswith(country_code):
        return None
    _, stripped, _ = _strip_national_prefix(digits, metadata)
    if _test_number_length(stripped, metadata) not in _NOT_STRIPPED:
        digits = stripped
    if len(digits) < 2:
        return None
    number = pn.PhoneNumber(country_code=metadata.country_code, national_number=int(digits))
    _set_leading_zeros(digits, number)
    return number


def _rules_for(region: str) -> tuple[PhoneMetadata, re.Pattern[str], str] | None:
    """(metadata, exit-code pattern, country code as text) as parse uses them for `region`."""
    if region not in _national_rules:
        metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
        if metadata is None or metadata.country_code is None:
            _national_rules[region] = None
        else:
            exit_code = re.compile(metadata.international_prefix or "NonMatch")
            _national_rules[region] = (metadata, exit_code, str(metadata.country_code))
    return _national_rules[region]
