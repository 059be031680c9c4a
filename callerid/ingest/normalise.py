"""One phone cell to E.164, or the one reason it cannot be: parse, then possible, then valid.

Work is done a batch at a time, one phonenumbers step over the whole batch before the next:
each step uses its own set of metadata regexes, and interleaving the steps row by row over many
countries overflows `re`'s 512-pattern cache, so phonenumbers recompiles them (measured: 2.2x
slower on mixed input). `parallel.normalise_all` also groups the batches by country.

The outcomes are plain immutable values that pickle, so batches can go to other processes.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import phonenumbers as pn
from phonenumbers import NumberParseException, PhoneNumberType
from phonenumbers import ValidationResult as Possible

from callerid.ingest.classify import national_format, region_and_type
from callerid.ingest.cleaning import clean, has_letters
from callerid.ingest.models import NumberType, RejectReason
from callerid.ingest.quick_parse import parse_international, parse_national

_TYPE_NAMES = {getattr(PhoneNumberType, t.name): t for t in NumberType}
_UNKNOWN = PhoneNumberType.UNKNOWN
# Digits-only cells this long that fail in their region are tried as international: the `+`
# was eaten by a spreadsheet. Shorter ones are national numbers far more often than not.
_MIN_DIGITS_FOR_LOST_PLUS = 11
_TOO_SHORT_ERRORS = (NumberParseException.TOO_SHORT_NSN, NumberParseException.TOO_SHORT_AFTER_IDD)


class Normalised(NamedTuple):
    """A valid number (a named tuple: one is built per row, and this is the cheapest value)."""

    e164: str
    national: str
    region: str
    country_code: int
    number_type: NumberType
    assumed_plus: bool = False  # read as international although written without `+`


@dataclass(frozen=True, slots=True)
class Failure:
    reason: RejectReason
    message: str


Outcome = Normalised | Failure


def normalise(raw: str, region: str) -> Outcome:
    return normalise_batch([(raw, region)])[0]


def normalise_batch(items: Sequence[tuple[str, str]]) -> list[Outcome]:
    """Normalise (raw cell, region for a national number) pairs; one outcome per pair, in order.

    Each cell is read as written first; only cells that fail get their other readings (`00`,
    `011`, a lost `+`), in later rounds over the whole batch, so the slow path stays batched too.
    """
    outcomes: list[Outcome | None] = [None] * len(items)
    texts = [""] * len(items)
    readings: dict[int, list[tuple[str, bool]]] = {}
    for i, (raw, _) in enumerate(items):
        cleaned = clean(raw)
        texts[i] = cleaned.text
        if not cleaned.text:
            outcomes[i] = Failure(RejectReason.EMPTY, "no phone number")
        elif cleaned.damaged:
            outcomes[i] = Failure(
                RejectReason.DAMAGED_NUMBER,
                f"{cleaned.text} is a spreadsheet float that lost digits; "
                "format the column as text and export it again",
            )
        else:
            readings[i] = [(cleaned.text, False)]
    first: dict[int, pn.PhoneNumber | int] = {}
    found: list[tuple[int, pn.PhoneNumber, str | None, int, bool]] = []
    pending = list(readings)
    for round_ in range(3):
        attempts = [(i, *readings[i][round_]) for i in pending if round_ < len(readings[i])]
        numbers = [_parse(text, items[i][1]) for i, text, _ in attempts]
        kinds = [(None, _UNKNOWN) if isinstance(n, int) else region_and_type(n) for n in numbers]
        pending = []
        for (i, _, assumed_plus), number, (where, kind) in zip(
            attempts, numbers, kinds, strict=True
        ):
            if round_ == 0:
                first[i] = number
                if not isinstance(number, int) and number.extension:
                    outcomes[i] = _extension_failure(number)
                    continue
                if has_letters(texts[i]):
                    outcomes[i] = _letters_failure()
                    continue
            if not isinstance(number, int) and kind != _UNKNOWN and not number.extension:
                found.append((i, number, where, kind, assumed_plus))
                continue
            if round_ == 0:
                readings[i].extend(_international_readings(texts[i]))
            pending.append(i)
    for i, outcome in zip([f[0] for f in found], _format(found), strict=True):
        outcomes[i] = outcome
    for i in readings:
        if outcomes[i] is None:
            outcomes[i] = _explain(texts[i], first[i])
    return [outcome for outcome in outcomes if outcome is not None]


def _parse(text: str, region: str) -> pn.PhoneNumber | int:
    """The parsed number, or phonenumbers' error type."""
    number = parse_international(text) if text[:1] == "+" else parse_national(text, region)
    if number is not None:
        return number
    try:
        return pn.parse(text, region)
    except NumberParseException as exc:
        # parse keeps sys.exc_info() in locals and re-raises: its frame and the traceback refer
        # to each other, and through the frames' f_back that cycle would keep this batch's and
        # its callers' locals (whole lists of rows) alive until the cycle collector runs
        # (measured: 220k objects, a tenth of the run time). Clearing the frames cuts it.
        traceback.clear_frames(exc.__traceback__)
        return int(exc.error_type)


def _format(found: list[tuple[int, pn.PhoneNumber, str | None, int, bool]]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for _, number, region, kind, assumed_plus in found:
        nsn = pn.national_significant_number(number)
        code = number.country_code or 0
        outcomes.append(
            Normalised(
                f"+{code}{nsn}",  # pn.format_number(number, E164) for a number with no extension
                national_format(number, nsn),
                region or "",
                code,
                _TYPE_NAMES[kind],
                assumed_plus,
            )
        )
    return outcomes


def _explain(text: str, first: pn.PhoneNumber | int) -> Failure:
    if isinstance(first, int):
        return _parse_failure(text, first)
    return _invalid_failure(first, written_with_plus=text.startswith("+"))


def _extension_failure(number: pn.PhoneNumber) -> Failure:
    return Failure(
        RejectReason.HAS_EXTENSION,
        f"has an extension ({number.extension}); a caller ID cannot have one",
    )


def _international_readings(text: str) -> list[tuple[str, bool]]:
    """`00 44 ...` / `011 44 ...` whatever the region's own exit code, and a lost `+`."""
    readings: list[tuple[str, bool]] = []
    if text.startswith("011"):
        readings.append(("+" + text[3:], False))
    elif text.startswith("00"):
        readings.append(("+" + text[2:], False))
    digits = "".join(ch for ch in text if ch.isdigit())
    if text[:1].isdigit() and digits[:1] != "0" and len(digits) >= _MIN_DIGITS_FOR_LOST_PLUS:
        readings.append(("+" + digits, True))
    return readings


def _letters_failure() -> Failure:
    return Failure(RejectReason.NOT_A_NUMBER, "contains letters; write the number in digits")


def _digits(count: int) -> str:
    return f"{count} digit" if count == 1 else f"{count} digits"


def _parse_failure(text: str, parse_error: int) -> Failure:
    count = sum(ch.isdigit() for ch in text)
    digits = _digits(count)
    if count == 0:
        return Failure(RejectReason.NOT_A_NUMBER, "contains no digits")
    if parse_error == NumberParseException.INVALID_COUNTRY_CODE:
        return Failure(RejectReason.INVALID_COUNTRY, "starts with an unknown country code")
    if parse_error == NumberParseException.TOO_LONG:
        return Failure(RejectReason.TOO_LONG, f"too long to be a phone number ({digits})")
    if parse_error in _TOO_SHORT_ERRORS or count < 3:
        return Failure(RejectReason.TOO_SHORT, f"too short to be a phone number ({digits})")
    return Failure(RejectReason.UNPARSEABLE, "cannot be read as a phone number")


def _invalid_failure(number: pn.PhoneNumber, *, written_with_plus: bool) -> Failure:
    """Parsed but not valid: the possible-length check tells short, long and wrong apart."""
    where = pn.region_code_for_country_code(number.country_code or 0)
    digits = _digits(len(pn.national_significant_number(number)))
    hint = "" if written_with_plus else "; if it is foreign, write it with + and its country code"
    possible = pn.is_possible_number_with_reason(number)
    if possible == Possible.INVALID_COUNTRY_CODE:
        return Failure(RejectReason.INVALID_COUNTRY, f"+{number.country_code} is no country code")
    if possible in (Possible.TOO_SHORT, Possible.IS_POSSIBLE_LOCAL_ONLY):
        local = " (a local number: add the area code)" if possible != Possible.TOO_SHORT else ""
        return Failure(RejectReason.TOO_SHORT, f"too short for {where} ({digits}){local}{hint}")
    if possible == Possible.TOO_LONG:
        return Failure(RejectReason.TOO_LONG, f"too long for {where} ({digits}){hint}")
    return Failure(RejectReason.INVALID_FOR_REGION, f"not a valid {where} number{hint}")
