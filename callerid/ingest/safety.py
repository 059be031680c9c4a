"""Cells written to the CSV reports people open in a spreadsheet, made safe to open.

A cell that starts with `=`, `@`, `+` or `-` is run as a formula by Excel, LibreOffice and
Google Sheets, and a crafted one (`=HYPERLINK(...)`, `+cmd|' /C calc'!A0`) can leak data or
run a command (OWASP "CSV injection"). Such a cell is written with a leading `'`, which the
spreadsheet shows as text and hides; the ingest strips it again when a rejects file is
imported. A phone number (`+14155550123`, `+1 (415) 555-0123`, `-5`) holds nothing a formula
could call and stays as it is.
"""

from __future__ import annotations

import re

_FORMULA_START = frozenset("=@\t\r\n")
# `+` or `-` then only digits and the punctuation of phone numbers: no name, no reference.
_NUMBER_LIKE = re.compile(r"[+-][0-9 ().\-/]*")


def safe_cell(value: str) -> str:
    """`value`, or `'value` when a spreadsheet would run it as a formula (leading spaces are
    looked through: some importers trim them)."""
    if not value:
        return value
    first = value[0]
    if first == " ":
        rest = value.lstrip(" ")
        if not rest:
            return value
        first = rest[0]
    else:
        rest = value
    if first in _FORMULA_START or (first in "+-" and _NUMBER_LIKE.fullmatch(rest) is None):
        return "'" + value
    return value
