"""Reading phone numbers and OTP codes out of free text (design.md, "OTP matching").

The code is the one 4-8 digit group that is not part of a phone number: phone numbers are found
first (python-phonenumbers' matcher, plus any long digit run written with separators) and cut out,
so that `(415) 555-0123` does not offer `0123` as a code.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import phonenumbers

DEFAULT_REGION = "US"
_CODE_RE = re.compile(r"(?<![\d])\d{4,8}(?![\d])")
# A run of digits joined by phone-style separators; 9+ digits in it make it a number, not a code.
_PHONE_RUN_RE = re.compile(r"\+?\d(?:[ .()\-]{0,2}\d)+")
_MIN_PHONE_DIGITS = 9


@functools.lru_cache(maxsize=4096)  # the same few To numbers come back on every message
def normalise_number(raw: str | None, region: str = DEFAULT_REGION) -> str | None:
    """E.164 for a valid phone number given as Plivo sends it (`14155550123`), with `+`, or in
    national format for `region`; None for anything else (short codes, names, garbage)."""
    if not raw:
        return None
    text = raw.strip()
    digits = re.sub(r"[\s().\-]", "", text)
    if not digits:
        return None
    candidates: list[tuple[str, str | None]] = []
    if digits.startswith("+"):
        candidates.append((digits, None))
    elif digits.isdigit():
        candidates += [("+" + digits, None), (digits, region)]
    for value, reg in candidates:
        try:
            parsed = phonenumbers.parse(value, reg)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return None


@dataclass(frozen=True)
class TextReading:
    """What a message's text offers: the phone numbers in it and the distinct candidate codes."""

    numbers: tuple[str, ...]
    codes: tuple[str, ...]

    @property
    def code(self) -> str | None:
        """The code when there is exactly one candidate, else None."""
        return self.codes[0] if len(self.codes) == 1 else None


def _phone_spans(text: str, region: str) -> tuple[list[tuple[int, int]], list[str]]:
    spans: list[tuple[int, int]] = []
    numbers: list[str] = []
    for match in phonenumbers.PhoneNumberMatcher(
        text, region, leniency=phonenumbers.Leniency.VALID
    ):
        spans.append((match.start, match.end))
        e164 = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
        if e164 not in numbers:
            numbers.append(e164)
    known = list(spans)
    for run in _PHONE_RUN_RE.finditer(text):
        start, end = run.span()
        if any(s < end and start < e for s, e in known):
            continue  # phonenumbers read this stretch already, and knows where a number ends
        if sum(c.isdigit() for c in run.group()) >= _MIN_PHONE_DIGITS:
            spans.append(run.span())
            found = normalise_number(run.group(), region)
            if found and found not in numbers:
                numbers.append(found)
    return spans, numbers


def read_text(text: str, region: str = DEFAULT_REGION) -> TextReading:
    spans, numbers = _phone_spans(text, region)
    codes: list[str] = []
    for match in _CODE_RE.finditer(text):
        start, end = match.span()
        if any(s < end and start < e for s, e in spans):
            continue
        if match.group() not in codes:
            codes.append(match.group())
    return TextReading(numbers=tuple(numbers), codes=tuple(codes))


def is_code(value: str) -> bool:
    return bool(re.fullmatch(r"\d{4,8}", value))
