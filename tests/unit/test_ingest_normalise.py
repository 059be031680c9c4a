"""The normaliser, table-driven: phonenumbers' own example numbers for 40 regions in every way
people write them, each reject reason, and each kind of spreadsheet damage."""

from __future__ import annotations

import phonenumbers as pn
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from callerid.ingest.models import NumberType, RejectReason
from callerid.ingest.normalise import Failure, Normalised, normalise, normalise_batch

# fmt: off
REGIONS = [
    "US", "CA", "GB", "DE", "FR", "IN", "AU", "BR", "JP", "MX", "ES", "IT", "NL", "SE", "NO",
    "PL", "ZA", "NG", "KE", "EG", "AR", "CL", "CO", "SG", "HK", "KR", "CN", "RU", "TR", "IE",
    "NZ", "PH", "ID", "AE", "SA", "IL", "CH", "AT", "BE", "PT",
]
# fmt: on
KINDS = {"mobile": PhoneNumberType.MOBILE, "fixed_line": PhoneNumberType.FIXED_LINE}


def example(region: str, kind: str) -> pn.PhoneNumber:
    number = pn.example_number_for_type(region, KINDS[kind])
    assert number is not None, f"phonenumbers has no {kind} example for {region}"
    return number


def accepted(raw: str, region: str) -> Normalised:
    outcome = normalise(raw, region)
    assert isinstance(outcome, Normalised), f"{raw!r} in {region}: {outcome}"
    return outcome


def rejected(raw: str, region: str) -> Failure:
    outcome = normalise(raw, region)
    assert isinstance(outcome, Failure), f"{raw!r} in {region} was accepted: {outcome}"
    return outcome


def test_the_table_spans_at_least_thirty_regions() -> None:
    assert len(set(REGIONS)) >= 30
    assert set(REGIONS) <= pn.SUPPORTED_REGIONS


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("region", REGIONS)
def test_example_numbers_in_every_written_form(region: str, kind: str) -> None:
    number = example(region, kind)
    e164 = pn.format_number(number, PhoneNumberFormat.E164)
    expected_region = pn.region_code_for_number(number)
    forms = {
        "e164, foreign default": (e164, "JP" if region != "JP" else "BR"),
        "international": (pn.format_number(number, PhoneNumberFormat.INTERNATIONAL), "US"),
        "national, own region": (pn.format_number(number, PhoneNumberFormat.NATIONAL), region),
        "00 exit code, from Germany": ("00" + e164[1:], "DE"),
        "00 exit code, from the US": ("00 " + e164[1:], "US"),
        "011 exit code, from the US": ("011 " + e164[1:], "US"),
        "011 exit code, from the UK": ("011" + e164[1:], "GB"),
        "rfc3966": (pn.format_number(number, PhoneNumberFormat.RFC3966), "US"),
    }
    for form, (raw, row_region) in forms.items():
        result = accepted(raw, row_region)
        assert result.e164 == e164, form
        assert result.region == expected_region, form
        assert result.country_code == number.country_code, form
        assert result.national == pn.format_number(number, PhoneNumberFormat.NATIONAL), form
        assert result.number_type in (NumberType(kind), NumberType.FIXED_LINE_OR_MOBILE), form
        assert result.assumed_plus is False, form


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [
        ("", "US", RejectReason.EMPTY),
        ("   ", "US", RejectReason.EMPTY),
        ("\u200b\u00a0", "US", RejectReason.EMPTY),
        ("++--()", "US", RejectReason.NOT_A_NUMBER),
        ("N/A", "US", RejectReason.NOT_A_NUMBER),
        ("call me", "GB", RejectReason.NOT_A_NUMBER),
        ("1-800-FLOWERS", "US", RejectReason.NOT_A_NUMBER),
        ("+1 415 555 2671 (mobile)", "US", RejectReason.NOT_A_NUMBER),
        ("+999 1234 5678", "US", RejectReason.INVALID_COUNTRY),
        ("1", "US", RejectReason.TOO_SHORT),
        ("123", "US", RejectReason.TOO_SHORT),
        ("555-0123", "US", RejectReason.TOO_SHORT),
        ("+1 415 555", "US", RejectReason.TOO_SHORT),
        ("+49 30 1234567890123456", "US", RejectReason.TOO_LONG),
        ("+1 415 555 26711", "US", RejectReason.TOO_LONG),
        ("+1 555 555 5555", "US", RejectReason.INVALID_FOR_REGION),
        ("+44 10 0000 0000", "US", RejectReason.INVALID_FOR_REGION),
        ("4155552671 x12", "US", RejectReason.HAS_EXTENSION),
        ("+1 415 555 2671 ext. 204", "DE", RejectReason.HAS_EXTENSION),
        ("+1 415 555 2671#9", "US", RejectReason.HAS_EXTENSION),
        ("tel:+1-415-555-2671;ext=12", "US", RejectReason.HAS_EXTENSION),
        ("4.15556E+09", "US", RejectReason.DAMAGED_NUMBER),
        ("4,15556E+09", "DE", RejectReason.DAMAGED_NUMBER),
        ("4.1555526715E+09", "US", RejectReason.DAMAGED_NUMBER),
        ("1+2+3+4+5", "US", RejectReason.UNPARSEABLE),
    ],
)
def test_each_number_reject_reason(raw: str, region: str, reason: RejectReason) -> None:
    failure = rejected(raw, region)
    assert failure.reason == reason, failure.message
    assert failure.message


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("4155552671.0", "US", "+14155552671"),
        ("4155552671,0", "US", "+14155552671"),
        ("14155552671.00", "US", "+14155552671"),
        ("4.155552671E+09", "US", "+14155552671"),
        ("4.155552671e9", "US", "+14155552671"),
        ("4,155552671E+09", "US", "+14155552671"),
        ("4.1555526710E+09", "US", "+14155552671"),
        ("4.42079460958E+11", "US", "+442079460958"),
        ("442079460958.0", "US", "+442079460958"),
        ("\u00a0+44\u00a020\u00a07946\u00a00958\u00a0", "US", "+442079460958"),
        ("+44\u202f20\u20097946\u20070958", "US", "+442079460958"),
        ("\u200b+1\u200d415\u2060555\ufeff2671\u200e", "US", "+14155552671"),
        ("\t+1 415 555 2671\t", "US", "+14155552671"),
        ("tel:+1-415-555-2671", "DE", "+14155552671"),
        ("TEL:+44-20-7946-0958", "US", "+442079460958"),
        ("'+14155552671", "GB", "+14155552671"),
        ('="+14155552671"', "GB", "+14155552671"),
        ("７９１１ １２３４５６", "GB", "+447911123456"),
        ("０３−１２３４−５６７８", "JP", "+81312345678"),
        ("٠١٠٠١٢٣٤٥٦٧", "EG", "+201001234567"),
        ("۰۹۱۲۳۴۵۶۷۸۹", "IR", "+989123456789"),
        ("07911 123456", "GB", "+447911123456"),
        ("7911123456", "GB", "+447911123456"),
        ("(415) 555-2671", "US", "+14155552671"),
        ("415.555.2671", "US", "+14155552671"),
        ("1 415 555 2671", "US", "+14155552671"),
    ],
)
def test_spreadsheet_damage_is_repaired_when_nothing_was_lost(
    raw: str, region: str, e164: str
) -> None:
    assert accepted(raw, region).e164 == e164


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("447911123456", "US", "+447911123456"),
        ("44 20 7946 0958", "US", "+442079460958"),
        ("33612345678", "US", "+33612345678"),
        ("14155552671", "GB", "+14155552671"),
    ],
)
def test_a_lost_plus_is_read_as_international_and_flagged(raw: str, region: str, e164: str) -> None:
    result = accepted(raw, region)
    assert result.e164 == e164
    assert result.assumed_plus is True


def test_a_national_number_is_never_read_as_international() -> None:
    # 10 digits: a US national number, not +41 (Switzerland) with a lost plus.
    assert rejected("4155552671", "GB").reason == RejectReason.INVALID_FOR_REGION
    assert accepted("4155552671", "US").assumed_plus is False


def test_messages_say_what_to_do() -> None:
    assert "extension (204)" in rejected("+1 650 555 0100 x204", "US").message
    assert "area code" in rejected("555-0123", "US").message
    assert "format the column as text" in rejected("4.15556E+09", "US").message
    assert "write it with +" in rejected("0207 946 0958", "US").message


def test_a_batch_keeps_order_and_length() -> None:
    items = [("+14155552671", "US"), ("", "US"), ("020 7946 0958", "GB"), ("x", "US")] * 3
    outcomes = normalise_batch(items)
    assert len(outcomes) == len(items)
    assert [type(o).__name__ for o in outcomes[:4]] == [
        "Normalised",
        "Failure",
        "Normalised",
        "Failure",
    ]
    assert outcomes[2] == outcomes[6] == accepted("020 7946 0958", "GB")


def test_digits_valid_in_the_row_region_stay_national() -> None:
    # 33612345678 is a valid German number: in a German row it is one, not France's +33.
    result = accepted("33612345678", "DE")
    assert result.e164 == "+4933612345678"
    assert result.assumed_plus is False
