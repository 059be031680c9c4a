"""Undo spreadsheet damage in a phone cell before phonenumbers sees it, where nothing is lost.

Repaired: non-breaking, zero-width and other invisible characters; `tel:` URIs; Excel's text
guards (`'+1...`, `="+1..."`); floats that kept every digit (`4155552671.0`, `4.155552671E+09`).
Refused: floats that lost digits (`4.15556E+09`): the digits are gone and guessing would verify
someone else's phone. Full-width and Arabic-Indic digits need nothing: phonenumbers reads them.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# Spaces a spreadsheet or a web page leaves behind; phonenumbers treats only some as separators.
_SPACE_LIKE = (
    "\u00a0\u2007\u202f\u3000\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2008\u2009\u200a\t"
)
# Invisible format characters (zero-width, BOM, soft hyphen, direction marks) carry nothing.
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
_INVISIBLE += "\u2066\u2067\u2068\u2069"
_TRANSLATION = {**dict.fromkeys(map(ord, _SPACE_LIKE), " "), **dict.fromkeys(map(ord, _INVISIBLE))}

# A float rendering of a whole number: Excel appends `.0` to numbers with at least a few digits.
_TRAILING_ZERO_FRACTION = re.compile(r"(\d{6,})[.,]0+")
# Scientific notation as Excel and pandas write it: 4.155552671E+09, 4,15555E+09 (comma locales).
_SCIENTIFIC = re.compile(r"(\d)(?:[.,](\d*))?[eE]\+?(\d{1,3})")
_LETTER = re.compile(r"[^\W\d_]")


class Cleaned(NamedTuple):
    """(A named tuple: one is made per row, and this is the cheapest immutable value.)"""

    text: str  # what to give phonenumbers ("" when the cell held nothing)
    damaged: bool = False  # a float lost digits: refuse rather than guess


def clean(raw: str) -> Cleaned:
    # translate() with a dict walks every character in Python-level lookups: skip it for ASCII,
    # where the only space-like character to map is the tab.
    if raw.isascii():
        text = raw.strip()
        if "\t" in text:
            text = text.replace("\t", " ")
    else:
        text = raw.translate(_TRANSLATION).strip()
    if not text:
        return Cleaned("")
    text = _strip_text_guards(text)
    if text[:4].lower() == "tel:":
        text = text[4:].strip()
    if "e" in text or "E" in text:
        return _repair_scientific(text)
    match = _TRAILING_ZERO_FRACTION.fullmatch(text)
    return Cleaned(match.group(1) if match else text)


def _strip_text_guards(text: str) -> str:
    """`'+14155552671` (typed to stop Excel eating the `+`) and `="+14155552671"` (CSV trick)."""
    if text.startswith("'"):
        return text[1:].strip()
    if text.startswith('="') and text.endswith('"') and len(text) >= 3:
        return text[2:-1].strip()
    return text


def _repair_scientific(text: str) -> Cleaned:
    match = _SCIENTIFIC.fullmatch(text)
    if match is None:
        return Cleaned(text)
    lead, fraction, exponent = match.group(1), match.group(2) or "", int(match.group(3))
    if len(fraction) > exponent and fraction[exponent:].strip("0") == "":
        fraction = fraction[:exponent]
    if len(fraction) != exponent:
        # Fewer digits than the exponent needs: the tail was rounded away (or the value was
        # never a whole number); either way the real digits are unknown.
        return Cleaned(text, damaged=True)
    return Cleaned(lead + fraction)


def has_letters(text: str) -> bool:
    return _LETTER.search(text) is not None
