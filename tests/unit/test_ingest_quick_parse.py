"""The `+digits` short cut must build exactly the number `phonenumbers.parse` builds, or decline."""

from __future__ import annotations

from collections.abc import Iterator

import phonenumbers as pn
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import NumberParseException, PhoneNumberFormat

from callerid.ingest.quick_parse import parse_international, parse_national


def _parsed(text: str, region: str = "US") -> pn.PhoneNumber | None:
    try:
        return pn.parse(text, region)
    except NumberParseException:
        return None


def _region_examples() -> Iterator[tuple[str, pn.PhoneNumber]]:
    """(region, example number) for every region and number type phonenumbers has one of."""
    for region in sorted(pn.SUPPORTED_REGIONS):
        for kind in range(11):
            number = pn.example_number_for_type(region, kind)
            if number is not None:
                yield region, number


def _examples() -> list[str]:
    texts = []
    for _, number in _region_examples():
        for form in (PhoneNumberFormat.E164, PhoneNumberFormat.INTERNATIONAL):
            text = pn.format_number(number, form)
            texts += [text, text.replace(" ", "-"), f" {text} "]
    for code in pn.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        number = pn.example_number_for_non_geo_entity(code)
        if number is not None:
            texts.append(pn.format_number(number, PhoneNumberFormat.E164))
    return texts


def test_every_regions_examples_match_parse() -> None:
    texts = _examples()
    taken = [text for text in texts if parse_international(text.strip()) is not None]
    for text in taken:
        assert parse_international(text.strip()) == _parsed(text), text
    assert len(taken) > 0.9 * len(texts)  # the short cut is the common path, not a rarity


def test_it_declines_what_parse_must_decide() -> None:
    assert parse_international("+44 (0)20 7946 0958") is None  # parse strips the trunk 0
    assert parse_international("+7 8 800 555 35 35") is None  # 8 is Russia's trunk prefix
    assert parse_international("+1 415 555 2671 x12") is None
    assert parse_international("0044 20 7946 0958") is None
    assert parse_international("+999 1234 5678") is None  # no such country code
    assert parse_international("+12") is None


@settings(max_examples=300, deadline=None)
@given(
    digits=st.text(alphabet="0123456789", min_size=1, max_size=18),
    separators=st.lists(st.sampled_from([" ", "-", ".", "(", ")"]), max_size=4),
    at=st.lists(st.integers(min_value=0, max_value=18), max_size=4),
)
def test_random_plus_numbers_match_parse(digits: str, separators: list[str], at: list[int]) -> None:
    chars = list(digits)
    for separator, index in zip(separators, at, strict=False):
        chars.insert(min(index, len(chars)), separator)
    text = "+" + "".join(chars)
    quick = parse_international(text)
    if quick is not None:
        assert quick == _parsed(text)


def test_other_scripts_digits_are_left_to_parse() -> None:
    assert parse_international("+٤٤٠٧٩١١١٢٣٤٥٦") is None
    assert parse_international("+４４２０７９４６０９５８") is None


def _national_examples() -> list[tuple[str, str]]:
    cases = []
    for region, number in _region_examples():
        text = pn.format_number(number, PhoneNumberFormat.NATIONAL)
        digits = "".join(ch for ch in text if ch.isdigit())
        cases += [(text, region), (digits, region), (text.replace(" ", "-"), region)]
        cases.append((digits, "US" if region != "US" else "GB"))  # read in another region
    return cases


def test_every_regions_national_examples_match_parse() -> None:
    cases = _national_examples()
    taken = [(t, r) for t, r in cases if parse_national(t, r) is not None]
    for text, region in taken:
        assert parse_national(text, region) == _parsed(text, region), (text, region)
    assert len(taken) > 0.8 * len(cases)


def test_national_declines_what_parse_must_decide() -> None:
    assert parse_national("011 44 20 7946 0958", "US") is None  # the US exit code
    assert parse_national("0044 20 7946 0958", "GB") is None
    assert parse_national("1 415 555 2671", "US") is None  # the region's own country code
    assert parse_national("44 20 7946 0958", "GB") is None
    assert parse_national("+44 20 7946 0958", "GB") is None  # international: the other short cut
    assert parse_national("415 555 2671 x12", "US") is None
    assert parse_national("020 7946 0958", "XX") is None  # no such region
    assert parse_national("12", "US") is None
    assert parse_national("٠٢٠٧٩٤٦٠٩٥٨", "GB") is None  # other scripts' digits: parse maps them


@settings(max_examples=600, deadline=None)
@given(
    digits=st.text(alphabet="0123456789", min_size=1, max_size=19),
    separators=st.lists(st.sampled_from([" ", "-", ".", "(", ")"]), max_size=4),
    at=st.lists(st.integers(min_value=0, max_value=19), max_size=4),
    region=st.sampled_from(sorted(pn.SUPPORTED_REGIONS)),
)
def test_random_national_numbers_match_parse(
    digits: str, separators: list[str], at: list[int], region: str
) -> None:
    chars = list(digits)
    for separator, index in zip(separators, at, strict=False):
        chars.insert(min(index, len(chars)), separator)
    text = "".join(chars)
    quick = parse_national(text, region)
    if quick is not None:
        assert quick == _parsed(text, region), (text, region)
