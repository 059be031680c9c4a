"""Region, number type and national format of a parsed number, as phonenumbers computes them.

`pn.number_type`, `pn.region_code_for_number` and `pn.format_number(..., NATIONAL)` fetch every
metadata regex through `re.compile` on every call, and a run over many countries overflows
`re`'s 512-pattern cache, so they recompile too; `number_type` also works out the region again.
Together they were ~45% of the ingest's time. This module walks the same metadata in the same
order with each pattern compiled once per country code (a few hundred patterns for 245
regions), and hands back to phonenumbers whatever it does not cover (an extension, a zero
national number). The tests compare all three answers with phonenumbers' on every region's
example numbers and on random numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any, NamedTuple

import phonenumbers as pn
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata, PhoneNumberFormat
from phonenumbers import PhoneNumberType as T
from phonenumbers.phonenumberutil import _FIRST_GROUP_PATTERN

_Match = Callable[[str], re.Match[str] | None]


class _Desc(NamedTuple):
    lengths: frozenset[int]  # empty: any length (phonenumbers' rule)
    fullmatch: _Match | None  # None: the desc has no pattern and matches nothing


class _Types(NamedTuple):
    """One region's metadata, as `_number_type_helper` reads it."""

    general: _Desc | None
    # The special types (premium rate ... voicemail), fixed line and mobile in phonenumbers'
    # order, as one alternation: its first alternative that matches the whole number is the
    # first type phonenumbers would find. None: no type has a pattern.
    first_type: _Match | None
    kinds: dict[str, int]  # the alternation's group name -> type
    mobile: _Desc | None
    same_mobile_and_fixed_line: bool


class _Format(NamedTuple):
    pattern: re.Pattern[str]
    rule: str  # the format rule with the national prefix rule already put in
    # The rule as a str.format template (`\1 \2` -> `{0} {1}`): expanding the one match that
    # covers the number is what `sub` does, without its template machinery. None: the rule has
    # something else (`\g<..>`, a reference followed by a digit) and sub expands it.
    template: str | None


class _Country(NamedTuple):
    regions: tuple[str, ...]
    # Only for codes shared by several regions: (region, leading-digits match or its types).
    candidates: tuple[tuple[str, _Match | None, _Types | None], ...]
    formats: tuple[_Format, ...] | None  # None: let phonenumbers format (no metadata)
    # The formats as one alternation, in order: its first alternative whose leading digits and
    # pattern match is the format phonenumbers picks. None: no formats.
    pick_format: _Match | None


def region_and_type(number: pn.PhoneNumber) -> tuple[str | None, int]:
    """`(pn.region_code_for_number(number), pn.number_type(number))`, each worked out once."""
    country = _country(number.country_code or 0)
    if country is None:
        return None, T.UNKNOWN
    nsn = pn.national_significant_number(number)
    if len(country.regions) == 1:
        region: str | None = country.regions[0]
    else:
        region = _region_from_list(country, nsn)
    types = _types(number.country_code or 0, region)
    return region, T.UNKNOWN if types is None else _type_of(nsn, types)


def national_format(number: pn.PhoneNumber, nsn: str | None = None) -> str:
    """`pn.format_number(number, PhoneNumberFormat.NATIONAL)`; `nsn`: the number's national
    significant number when the caller has it already."""
    country = _country(number.country_code or 0)
    if country is None or country.formats is None or number.extension or not number.national_number:
        return pn.format_number(number, PhoneNumberFormat.NATIONAL)
    if nsn is None:
        nsn = pn.national_significant_number(number)
    found = None if country.pick_format is None else country.pick_format(nsn)
    if found is None:
        return nsn
    fmt = country.formats[int((found.lastgroup or "f")[1:])]
    match = fmt.pattern.match(nsn)  # what `sub` replaces first: the leftmost match, at 0
    if fmt.template is not None and match is not None and match.end() == len(nsn):
        return fmt.template.format(*[group or "" for group in match.groups()])
    return fmt.pattern.sub(fmt.rule, nsn)


def _region_from_list(country: _Country, nsn: str) -> str | None:
    for region, leading_digits, types in country.candidates:
        if leading_digits is not None:
            if leading_digits(nsn):
                return region
        elif types is not None and _type_of(nsn, types) != T.UNKNOWN:
            return region
    return None


def _matches(nsn: str, desc: _Desc | None) -> bool:
    if desc is None or desc.fullmatch is None:
        return False
    if desc.lengths and len(nsn) not in desc.lengths:
        return False
    return desc.fullmatch(nsn) is not None


def _type_of(nsn: str, types: _Types) -> int:
    if not _matches(nsn, types.general) or types.first_type is None:
        return T.UNKNOWN
    found = types.first_type(nsn)
    if found is None:
        return T.UNKNOWN
    kind = types.kinds[found.lastgroup or ""]
    if kind == T.FIXED_LINE and (types.same_mobile_and_fixed_line or _matches(nsn, types.mobile)):
        return T.FIXED_LINE_OR_MOBILE
    return kind


@cache
def _country(code: int) -> _Country | None:
    regions = COUNTRY_CODE_TO_REGION_CODE.get(code)
    if regions is None:
        return None
    candidates: list[tuple[str, _Match | None, _Types | None]] = []
    if len(regions) > 1:
        for region in regions:
            metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
            if metadata is None:
                continue
            leading = metadata.leading_digits
            if leading is not None:
                candidates.append((region, re.compile(leading).match, None))
            else:
                candidates.append((region, None, _types_of(metadata)))
    main = pn.region_code_for_country_code(code)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, main.upper())
    formats = None if metadata is None else tuple(map(_format_of, metadata.number_format))
    return _Country(tuple(regions), tuple(candidates), formats, _format_picker(metadata))


@cache
def _types(code: int, region: str | None) -> _Types | None:
    if region is None:  # no region claims the number: phonenumbers finds no metadata either
        return None
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
    return None if metadata is None else _types_of(metadata)


def _types_of(metadata: Any) -> _Types:
    same = bool(metadata.same_mobile_and_fixed_line_pattern)
    ordered = [
        (metadata.premium_rate, T.PREMIUM_RATE),
        (metadata.toll_free, T.TOLL_FREE),
        (metadata.shared_cost, T.SHARED_COST),
        (metadata.voip, T.VOIP),
        (metadata.personal_number, T.PERSONAL_NUMBER),
        (metadata.pager, T.PAGER),
        (metadata.uan, T.UAN),
        (metadata.voicemail, T.VOICEMAIL),
        (metadata.fixed_line, T.FIXED_LINE),
    ]
    if not same:  # the same pattern: a mobile match is a fixed-line match, found before it
        ordered.append((metadata.mobile, T.MOBILE))
    alternatives, kinds = [], {}
    for desc, kind in ordered:
        if desc is None or not desc.national_number_pattern or desc.possible_length == (-1,):
            continue  # phonenumbers: no pattern, or length -1 ("none of this type"): no match
        name = f"t{kind}"
        kinds[name] = kind
        alternatives.append(f"(?P<{name}>{_length_check(desc)}(?:{desc.national_number_pattern}))")
    return _Types(
        general=_desc(metadata.general_desc),
        first_type=re.compile("|".join(alternatives)).fullmatch if alternatives else None,
        kinds=kinds,
        mobile=_desc(metadata.mobile),
        same_mobile_and_fixed_line=same,
    )


def _length_check(desc: Any) -> str:
    """A look-ahead for the desc's possible lengths (none: any length, phonenumbers' rule)."""
    lengths = sorted(set(desc.possible_length or ()))
    if not lengths:
        return ""
    return "(?=(?:" + "|".join(f".{{{n}}}" for n in lengths) + r")\Z)"


def _desc(desc: Any) -> _Desc | None:
    if desc is None:
        return None
    pattern = desc.national_number_pattern
    return _Desc(
        lengths=frozenset(desc.possible_length or ()),
        fullmatch=re.compile(pattern).fullmatch if pattern else None,
    )


def _format_picker(metadata: Any) -> _Match | None:
    alternatives = []
    for i, fmt in enumerate(() if metadata is None else metadata.number_format):
        leading = fmt.leading_digits_pattern
        ahead = f"(?=(?:{leading[-1]}))" if len(leading) > 0 else ""
        alternatives.append(f"(?P<f{i}>{ahead}(?:{fmt.pattern}))")
    return re.compile("|".join(alternatives)).fullmatch if alternatives else None


def _format_of(fmt: Any) -> _Format:
    rule = fmt.format
    if fmt.national_prefix_formatting_rule:
        # As phonenumbers' _format_nsn_using_pattern builds it for the NATIONAL format.
        rule = re.sub(_FIRST_GROUP_PATTERN, fmt.national_prefix_formatting_rule, rule, count=1)
    pattern = re.compile(fmt.pattern)
    return _Format(
        pattern=pattern,
        rule=rule,
        template=_template(rule, pattern.groups),
    )


_GROUP_REFERENCE = re.compile(r"\\([1-9])")


def _template(rule: str, groups: int) -> str | None:
    r"""`(\1) \2-\3` -> `({0}) {1}-{2}`; None unless the rule is literals and \N (N <= groups)."""
    parts = _GROUP_REFERENCE.split(rule)
    literals, numbers = parts[::2], [int(n) for n in parts[1::2]]
    if any("\\" in text for text in literals) or any(n > groups for n in numbers):
        return None
    if any(text[:1].isdigit() for text in literals[1:]):
        return None  # `\12`: re reads a two-digit group number
    out = []
    for i, part in enumerate(parts):
        out.append(f"{{{int(part) - 1}}}" if i % 2 else part.replace("{", "{{").replace("}", "}}"))
    return "".join(out)
