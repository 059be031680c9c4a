"""Reading numbers and codes out of SMS texts: the one 4-8 digit group not part of a number."""

from __future__ import annotations

import pytest

from callerid.inbox.text import normalise_number, read_text


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("Your verification code is 4821", ("4821",)),
        ("Code: 12345678.", ("12345678",)),
        ("482193 is your code", ("482193",)),
        ("Code 4821 for (415) 555-0123", ("4821",)),  # 0123 belongs to the phone number
        ("+1 415 555 0123: 7777", ("7777",)),
        ("14155550123 4821", ("4821",)),
        ("code 4821 from 415.555.0123", ("4821",)),
        ("4821 or 9999?", ("4821", "9999")),  # two candidates: ambiguous
        ("4821 again 4821", ("4821",)),  # the same code twice is one code
        ("no code here, only 123 and 123456789", ()),
        ("code 123", ()),
        ("", ()),
    ],
)
def test_codes(text: str, codes: tuple[str, ...]) -> None:
    assert read_text(text).codes == codes


def test_single_code_property() -> None:
    assert read_text("Your code is 4821").code == "4821"
    assert read_text("4821 or 9999").code is None
    assert read_text("nothing").code is None


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("code for +14155550123 is 4821", ("+14155550123",)),
        ("(415) 555-0123 and +44 20 7946 0958", ("+14155550123", "+442079460958")),
        ("Your code is 4821", ()),
    ],
)
def test_numbers_in_text(text: str, numbers: tuple[str, ...]) -> None:
    assert read_text(text).numbers == numbers


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("14155550123", "+14155550123"),  # Plivo sends digits without +
        ("+14155550123", "+14155550123"),
        ("+1 (415) 555-0123", "+14155550123"),
        ("4155550123", "+14155550123"),  # national format for the default region
        ("442079460958", "+442079460958"),
        ("12345", None),  # a short code
        ("sms.example.com", None),
        ("", None),
        (None, None),
    ],
)
def test_normalise_number(raw: str | None, e164: str | None) -> None:
    assert normalise_number(raw) == e164
