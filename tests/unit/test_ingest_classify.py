"""`classify` must give exactly phonenumbers' region, number type and national format."""

from __future__ import annotations

import random

import phonenumbers as pn
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneNumberFormat

from callerid.ingest.classify import _template, national_format, region_and_type

_CODES = sorted(COUNTRY_CODE_TO_REGION_CODE)


def _examples() -> list[pn.PhoneNumber]:
    numbers = []
    for region in sorted(pn.SUPPORTED_REGIONS):
        for kind in range(11):
            number = pn.example_number_for_type(region, kind)
            if number is not None:
                numbers.append(number)
    for code in pn.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        number = pn.example_number_for_non_geo_entity(code)
        if number is not None:
            numbers.append(number)
    return numbers


def _variants(number: pn.PhoneNumber, rng: random.Random) -> list[pn.PhoneNumber]:
    """The example with its tail replaced by random digits, shorter, as long and longer."""
    nsn = str(number.national_number)
    out = []
    for _ in range(6):
        keep = rng.randrange(1, len(nsn) + 1)
        tail = "".join(rng.choice("0123456789") for _ in range(rng.randrange(0, 5)))
        out.append(
            pn.PhoneNumber(
                country_code=number.country_code,
                national_number=int(nsn[:keep] + tail),
                italian_leading_zero=number.italian_leading_zero,
                number_of_leading_zeros=number.number_of_leading_zeros,
            )
        )
    return out


def _assert_same(number: pn.PhoneNumber) -> None:
    expected = (pn.region_code_for_number(number), pn.number_type(number))
    assert region_and_type(number) == expected, number
    assert national_format(number) == pn.format_number(number, PhoneNumberFormat.NATIONAL), number


def test_every_regions_examples_and_their_neighbours() -> None:
    rng = random.Random(3)
    examples = _examples()
    assert len(examples) > 1300
    valid = 0
    for example in examples:
        for number in [example, *_variants(example, rng)]:
            _assert_same(number)
            valid += pn.is_valid_number(number)
    assert valid > 2000  # a quarter valid: the answers that matter are compared many times


def test_types_and_formats_it_meets_are_varied() -> None:
    kinds = {region_and_type(number)[1] for number in _examples()}
    assert len(kinds) >= 9


def test_numbers_it_hands_to_phonenumbers() -> None:
    with_extension = pn.parse("+1 415 555 2671 ext. 12", "US")
    zero = pn.PhoneNumber(country_code=44, national_number=0)
    unknown_code = pn.PhoneNumber(country_code=999, national_number=12345678)
    for number in (with_extension, zero, unknown_code):
        _assert_same(number)


@settings(max_examples=400, deadline=None)
@given(
    code=st.sampled_from(_CODES),
    digits=st.text(alphabet="0123456789", min_size=1, max_size=17),
    zeros=st.sampled_from([None, 1, 2]),
)
def test_random_numbers_match_phonenumbers(code: int, digits: str, zeros: int | None) -> None:
    number = pn.PhoneNumber(
        country_code=code,
        national_number=int(digits),
        italian_leading_zero=zeros is not None or None,
        number_of_leading_zeros=zeros,
    )
    _assert_same(number)


@pytest.mark.parametrize(
    ("rule", "groups", "template"),
    [
        (r"(\1) \2-\3", 3, "({0}) {1}-{2}"),
        (r"0\1 \2", 2, "0{0} {1}"),
        (r"{\1}", 1, "{{{0}}}"),  # braces are literals
        (r"\1 \12", 2, None),  # re reads group 12
        (r"\g<1>", 1, None),
        (r"\1 \4", 3, None),  # no such group: sub raises, so sub must decide
    ],
)
def test_format_rules_become_templates_only_when_exact(
    rule: str, groups: int, template: str | None
) -> None:
    assert _template(rule, groups) == template
