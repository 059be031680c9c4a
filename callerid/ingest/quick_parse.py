"""A short cut through `phonenumbers.parse` for the commonest cell: `+`, then digits.

`pn.parse` spends most of its time on what such a cell does not have (an exit code, letters, an
extension, a national prefix), and it is half of the ingest's run time. For `+44 20 7946 0958`,
`+1-415-555-2671` or `+4930901820` this builds the same `PhoneNumber` directly from phonenumbers'
own country-code table. Wherever parse might decide differently (the national number could start
with a national prefix that parse would strip), it declines and parse runs as usual. The tests
compare the two on every region's example numbers and on random input.
"""

from __future__ import annotations

import re

import phonenumbers as pn
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata

# ASCII digits only: parse maps other scripts' digits first, and so must the prefix check.
_PLUS_DIGITS = re.compile(r"\+[1-9][0-9]{5,16}")  # parse's own bounds: an NSN of 2 to 17 digits
_NO_PREFIX = re.compile(r"(?!)")  # never matches: for countries without a national prefix
_ANYTHING = re.compile(r"")  # always matches: no metadata, so never take the short cut
_prefix_by_code: dict[int, re.Pattern[str]] = {}


def parse_international(text: str) -> pn.PhoneNumber | None:
    """The number `pn.parse(text, any_region)` returns, or None to let it parse."""
    if not text.startswith("+"):
        return None
    # parse drops this punctuation between digits; `(0)` leaves a 0 that the prefix check catches
    compact = "".join(text.split()).replace("-", "").replace(".", "")
    compact = compact.replace("(", "").replace(")", "")
    if not _PLUS_DIGITS.fullmatch(compact):
        return None
    digits = compact[1:]
    for size in (1, 2, 3):
        code = int(digits[:size])
        if code in COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return None
    national = digits[size:]
    if _national_prefix(code).match(national):
        return None
    number = pn.PhoneNumber(country_code=code, national_number=int(national))
    if len(national) > 1 and national[0] == "0":
        # As parse records it: Italian-style leading zeros are part of the number.
        number.italian_leading_zero = True
        zeros = len(national) - len(national.lstrip("0"))
        zeros = min(zeros, len(national) - 1)
        if zeros != 1:
            number.number_of_leading_zeros = zeros
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
