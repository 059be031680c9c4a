"""`number_facts` (one parse per initiate) says what the three separate helpers say."""

from __future__ import annotations

import pytest

from callerid.sandbox.numbers import country_of, is_fixed_line, number_facts, parse_number


@pytest.mark.parametrize(
    "raw",
    [
        "+14155551234",  # US: fixed line or mobile
        "14155551234",  # bare digits, as in a path
        "%2B442079460958",  # UK fixed line, percent-encoded +
        " +447700900123",  # UK mobile, a stray space
        "+80012345678",  # international freephone: no single country
        "+4915112345678",
        "+1415555",  # too short
        "+1 415 555 1234",  # spaces inside: refused like parse_number does
        "abc",
        "",
        None,
    ],
)
def test_number_facts_agree_with_the_separate_helpers(raw: str | None) -> None:
    facts = number_facts(raw)
    e164 = parse_number(raw)
    if e164 is None:
        assert facts is None
        return
    assert facts is not None
    assert (facts.e164, facts.country, facts.fixed_line) == (
        e164,
        country_of(e164),
        is_fixed_line(e164),
    )


def test_a_landline_is_a_fixed_line() -> None:
    facts = number_facts("+442079460958")
    assert facts is not None and facts.fixed_line and facts.country == "GB"
