"""The owner cell (an email address) and the channel rule `auto` (issue 12), cell by cell."""

from __future__ import annotations

import phonenumbers as pn
import pytest

from callerid.ingest import AUTO_CHANNEL, Channel, NumberType, RejectReason, resolve_channel
from callerid.ingest.fields import parse_channel, parse_owner
from callerid.ingest.normalise import Failure, Normalised, normalise


@pytest.mark.parametrize(
    ("cell", "owner"),
    [
        ("ada@example.com", "ada@example.com"),
        ("  Ada.Lovelace+otp@Example.CO.UK ", "Ada.Lovelace+otp@example.co.uk"),
        ("Ada Lovelace <ada@example.com>", "ada@example.com"),
        ("<ops-team@branch-7.example.org>", "ops-team@branch-7.example.org"),
        ("o'brien@example.ie", "o'brien@example.ie"),
        ("", "default@example.com"),
        ("   ", "default@example.com"),
    ],
)
def test_owner_cells_that_are_one_address(cell: str, owner: str) -> None:
    assert parse_owner(cell, "default@example.com") == owner


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("ada", "is not an email address"),
        ("ada@", "is not an email address"),
        ("@example.com", "is not an email address"),
        ("ada@example", "is not an email address"),
        ("ada@@example.com", "is not an email address"),
        ("ada..l@example.com", "is not an email address"),
        (".ada@example.com", "is not an email address"),
        ("ada@-example.com", "is not an email address"),
        ("ada@example.c", "is not an email address"),
        ("ada lovelace@example.com", "is not an email address"),
        ("ada@exämple.com", "is not an email address"),
        ("x" * 65 + "@example.com", "is not an email address"),
        ("ada@example.com, bob@example.com", "holds 2 addresses; give one owner per row"),
        ("ada@example.com;bob@example.com", "holds 2 addresses"),
        ('=HYPERLINK("http://x")', "is not an email address"),
    ],
)
def test_owner_cells_that_are_not(cell: str, message: str) -> None:
    failure = parse_owner(cell, None)
    assert isinstance(failure, Failure) and failure.reason == RejectReason.BAD_OWNER
    assert message in failure.message


def test_channel_cells() -> None:
    assert parse_channel("", None) is None  # the default: auto
    assert parse_channel("", Channel.CALL) is Channel.CALL
    assert parse_channel(" AUTO ", Channel.SMS) is None
    assert parse_channel("Sms", None) is Channel.SMS
    failure = parse_channel("fax", None)
    assert isinstance(failure, Failure) and "none of sms, call, auto" in failure.message
    assert AUTO_CHANNEL == "auto"


def _example(region: str, kind: int) -> str:
    number = pn.example_number_for_type(region, kind)
    assert number is not None
    return pn.format_number(number, pn.PhoneNumberFormat.E164)


@pytest.mark.parametrize(
    ("region", "kind", "number_type", "channel"),
    [
        ("GB", pn.PhoneNumberType.FIXED_LINE, NumberType.FIXED_LINE, Channel.CALL),
        ("DE", pn.PhoneNumberType.FIXED_LINE, NumberType.FIXED_LINE, Channel.CALL),
        ("GB", pn.PhoneNumberType.MOBILE, NumberType.MOBILE, Channel.SMS),
        ("US", pn.PhoneNumberType.FIXED_LINE, NumberType.FIXED_LINE_OR_MOBILE, Channel.SMS),
        ("GB", pn.PhoneNumberType.TOLL_FREE, NumberType.TOLL_FREE, Channel.SMS),
        ("GB", pn.PhoneNumberType.VOIP, NumberType.VOIP, Channel.SMS),
    ],
)
def test_auto_is_a_call_for_fixed_lines_only(
    region: str, kind: int, number_type: NumberType, channel: Channel
) -> None:
    outcome = normalise(_example(region, kind), region)
    assert isinstance(outcome, Normalised) and outcome.number_type == number_type
    assert resolve_channel(None, outcome.number_type) is channel
    for own in Channel:  # a channel of the row's own always wins
        assert resolve_channel(own, outcome.number_type) is own
