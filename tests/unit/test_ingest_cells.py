"""The parts of ingest around the number: headers, delimiters, decoding, the other cells."""

from __future__ import annotations

import codecs
import pickle

import pytest

from callerid.ingest.columns import canonical, map_columns
from callerid.ingest.decode import SINGLE_COLUMN, decode, detect_delimiter
from callerid.ingest.fields import (
    check_defaults,
    parse_alias,
    parse_channel,
    parse_country,
    parse_subaccount,
)
from callerid.ingest.models import (
    Channel,
    IngestInputError,
    IngestOptionError,
    IngestResult,
    RejectReason,
)
from callerid.ingest.normalise import Failure


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (["phone_number"], {"phone_number": "phone_number"}),
        (["Phone Number", "Name"], {"phone_number": "Phone Number", "alias": "Name"}),
        (["\ufeffPHONE", "Label"], {"phone_number": "\ufeffPHONE", "alias": "Label"}),
        (["MSISDN", "friendly-name"], {"phone_number": "MSISDN", "alias": "friendly-name"}),
        (["tel", "Country Code"], {"phone_number": "tel", "country": "Country Code"}),
        (
            ["Number", "Region", "Channel"],
            {"phone_number": "Number", "country": "Region", "channel": "Channel"},
        ),
        (["phone", "sub-account"], {"phone_number": "phone", "subaccount": "sub-account"}),
        # `phone` outranks `number`, whatever the order of the columns.
        (["Number", "Phone"], {"phone_number": "Phone"}),
    ],
)
def test_headers_match_case_insensitively_with_synonyms(
    headers: list[str], expected: dict[str, str]
) -> None:
    assert map_columns(headers).found == expected


def test_unused_columns_are_carried_with_unique_names() -> None:
    columns = map_columns(["notes", "phone", "", "notes", "team"])
    assert columns.found == {"phone_number": "phone"}
    assert [name for _, name in columns.extra] == ["notes", "column_3", "notes_2", "team"]


def test_no_phone_column_names_the_columns_found() -> None:
    with pytest.raises(IngestInputError) as caught:
        map_columns(["name", "email"], path="people.csv")
    message = str(caught.value)
    assert "people.csv" in message
    assert "no phone number column" in message
    assert "'name', 'email'" in message
    assert caught.value.columns_found == ("name", "email")


def test_input_errors_survive_pickling() -> None:
    error = IngestInputError("bad", path="a.csv", columns_found=("x", "y"))
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.path, copy.columns_found) == ("a.csv: bad", "a.csv", ("x", "y"))
    option = pickle.loads(pickle.dumps(IngestOptionError("unknown encoding 'x'")))
    assert type(option) is IngestOptionError and str(option) == "unknown encoding 'x'"
    assert isinstance(option, IngestInputError) and isinstance(option, ValueError)


def test_canonical_header_names() -> None:
    assert canonical("  Phone-Number ") == "phone_number"
    assert canonical("Friendly Name") == "friendly_name"
    assert canonical("\u200bE.164") == "e_164"


@pytest.mark.parametrize(
    ("line", "delimiter"),
    [
        ("phone,alias\r\n", ","),
        ("phone;alias;country\n", ";"),
        ("phone\talias\n", "\t"),
        ("phone|alias\n", "|"),
        ('"phone;x",alias\n', ","),
        ("phone\n", SINGLE_COLUMN),
    ],
)
def test_delimiter_is_the_one_that_splits_the_header(line: str, delimiter: str) -> None:
    assert detect_delimiter(line) == delimiter


TEXT = "phone,alias\n+4930901820,Zoë Müller\n"


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (TEXT.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF8 + TEXT.encode("utf-8"), "utf-8-sig"),
        (TEXT.encode("utf-16"), "utf-16"),
        (codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"), "utf-16"),
        (TEXT.encode("utf-16-le"), "utf-16-le"),
        (TEXT.encode("utf-16-be"), "utf-16-be"),
        (TEXT.encode("utf-32"), "utf-32"),
        (TEXT.encode("cp1252"), "cp1252"),
    ],
)
def test_encodings_are_detected(data: bytes, encoding: str) -> None:
    assert decode(data, None) == (TEXT, encoding)


def test_a_named_encoding_is_used_and_a_bom_dropped() -> None:
    assert decode(codecs.BOM_UTF8 + TEXT.encode(), "utf-8") == (TEXT, "utf-8")
    assert decode(TEXT.encode("cp1252"), "latin-1")[0] == TEXT
    assert decode("phone\n+7 495 123-45-67\n".encode("koi8-r"), "koi8_r")[0].startswith("phone")


def test_a_wrong_named_encoding_says_where_it_broke() -> None:
    with pytest.raises(IngestInputError, match=r"not valid utf-8 at byte 26.*--encoding"):
        decode(TEXT.encode("cp1252"), "utf-8", path="x.csv")
    with pytest.raises(IngestOptionError, match="unknown encoding 'klingon'"):
        decode(b"", "klingon")


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("", None),
        ("  ", None),
        ("us", "US"),
        (" De ", "DE"),
        ("UK", "GB"),
        ("44", "GB"),
        ("+1", "US"),
        ("+49", "DE"),
    ],
)
def test_country_cells(cell: str, expected: str | None) -> None:
    assert parse_country(cell) == expected


@pytest.mark.parametrize("cell", ["XX", "Germany", "USA", "999", "+0", "١"])
def test_bad_country_cells(cell: str) -> None:
    failure = parse_country(cell)
    assert isinstance(failure, Failure)
    assert failure.reason == RejectReason.INVALID_COUNTRY
    assert cell.strip() in failure.message


def test_channel_cells() -> None:
    assert parse_channel("", Channel.CALL) is Channel.CALL
    assert parse_channel(" SMS ", Channel.CALL) is Channel.SMS
    assert parse_channel("Call", Channel.SMS) is Channel.CALL
    failure = parse_channel("voice", Channel.SMS)
    assert isinstance(failure, Failure) and failure.reason == RejectReason.BAD_CHANNEL


def test_alias_cells() -> None:
    assert parse_alias("  Front desk ") == "Front desk"
    assert parse_alias("") is None
    assert parse_alias("x" * 64) == "x" * 64
    for bad in ("x" * 65, "tab\there", "bell\x07", "ne\x85l"):
        failure = parse_alias(bad)
        assert isinstance(failure, Failure) and failure.reason == RejectReason.BAD_ALIAS, bad


def test_subaccount_cells() -> None:
    assert parse_subaccount("", "SASANDBOXSUBACCT0001") == "SASANDBOXSUBACCT0001"
    assert parse_subaccount(" SAMTU0Y2FKNGETYZDKNI ", None) == "SAMTU0Y2FKNGETYZDKNI"
    for bad in ("SA123", "MAMTU0Y2FKNGETYZDKNI", "samtu0y2fkngetyzdkni", "SAMTU0Y2FKNGETYZDKNIX"):
        failure = parse_subaccount(bad, None)
        assert isinstance(failure, Failure) and failure.reason == RejectReason.BAD_SUBACCOUNT


def test_run_defaults_are_checked_up_front() -> None:
    assert check_defaults("gb", "CALL", None) == ("GB", Channel.CALL, None, None)
    assert check_defaults("US", "Auto", None, " Ada@Example.COM ") == (
        "US",
        None,
        None,
        "Ada@example.com",
    )
    with pytest.raises(IngestOptionError, match="default region 'XX'"):
        check_defaults("XX", "sms", None)
    with pytest.raises(IngestOptionError, match="default channel 'fax'"):
        check_defaults("US", "fax", None)
    with pytest.raises(IngestOptionError, match="subaccount 'SA1'"):
        check_defaults("US", "sms", "SA1")
    with pytest.raises(IngestOptionError, match="default owner: owner 'ada' is not an email"):
        check_defaults("US", "sms", None, "ada")


def test_a_result_that_loses_a_row_cannot_be_built() -> None:
    with pytest.raises(AssertionError, match="lost rows"):
        IngestResult(
            accepted=[], rejected=[], warnings=[], data_rows=1, blank_lines=0,
            columns={}, extra_columns=[],
        )  # fmt: skip
