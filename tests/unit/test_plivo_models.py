"""Parsing of the API's JSON into typed results (fixtures from plivo-api.md §1.4)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from callerid.plivo import CallerId, Channel, Initiation, Page, UnexpectedResponseError
from callerid.plivo.models import parse_timestamp


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-09-25T13:10:39.968133341Z", datetime(2023, 9, 25, 13, 10, 39, 968133, tzinfo=UTC)),
        ("2024-02-09T03:52:22.880097813Z", datetime(2024, 2, 9, 3, 52, 22, 880097, tzinfo=UTC)),
        ("2023-09-25T14:40:38.68729Z", datetime(2023, 9, 25, 14, 40, 38, 687290, tzinfo=UTC)),
        ("2023-09-22T14:11:03.091534Z", datetime(2023, 9, 22, 14, 11, 3, 91534, tzinfo=UTC)),
        ("2023-09-22T14:11:03.5Z", datetime(2023, 9, 22, 14, 11, 3, 500000, tzinfo=UTC)),
        ("2023-09-22 14:11:03", datetime(2023, 9, 22, 14, 11, 3, tzinfo=UTC)),
        ("2023-09-22T16:11:03+02:00", datetime(2023, 9, 22, 14, 11, 3, tzinfo=UTC)),
        (
            "2023-09-22T16:11:03.123456789+0200",
            datetime(2023, 9, 22, 14, 11, 3, 123456, tzinfo=UTC),
        ),
        ("", None),
        (None, None),
    ],
)
def test_parse_timestamp(text: str | None, expected: datetime | None) -> None:
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize(
    "bad", ["yesterday", "2023-09-22T14:11:03.1234567890Z", "2023-13-01 00:00:00", 17]
)
def test_parse_timestamp_rejects_garbage(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(bad)


def test_complete_fixture() -> None:
    caller = CallerId.from_api(
        {
            "alias": "abhishek",
            "api_id": "584a97aa-ca1d-44f2-9dd3-e58fbacd6649",
            "channel": "call",
            "country": "IN",
            "created_at": "2023-09-25T13:10:39.968133341Z",
            "phone_number": "+919768368717",
            "verification_uuid": "2e68eb73-4d54-4391-bc98-71cd380911a4",
        }
    )
    assert caller.phone_number == "+919768368717"
    assert caller.channel is Channel.CALL
    assert caller.modified_at is None and caller.subaccount is None
    assert caller.created_at == datetime(2023, 9, 25, 13, 10, 39, 968133, tzinfo=UTC)


def test_get_fixture_empty_strings_become_none() -> None:
    caller = CallerId.from_api(
        {
            "alias": "test",
            "country": "",
            "channel": "",
            "created_at": "2023-09-22T14:11:03.091534Z",
            "modified_at": "2023-09-22T14:11:03.091534Z",
            "phone_number": "+919768368718",
            "subaccount": "",
            "verification_uuid": "0f978b20-9e2b-4cfe-99fe-f7087c03b8e1",
        }
    )
    assert (caller.country, caller.subaccount, caller.channel) == (None, None, None)
    assert caller.alias == "test"


def test_results_are_frozen() -> None:
    caller = CallerId(phone_number="+14155550123")
    with pytest.raises(AttributeError):
        caller.alias = "x"  # type: ignore[misc]


def test_list_page() -> None:
    page = Page.from_api(
        {
            "meta": {"limit": 20, "next": None, "offset": 0, "previous": None, "total_count": 1},
            "objects": [
                {
                    "phone_number": "+917691021365",
                    "resource_uri": "/v1/Account/MA/VerifiedCallerId/917691021365",
                    "subaccount": "SAMTU0Y2FKNGETYZDKNI",
                    "created_at": "2023-08-30T07:47:43.87171Z",
                }
            ],
        },
        limit=20,
        offset=0,
    )
    assert page.total_count == 1 and not page.has_more
    assert page.items[0].subaccount == "SAMTU0Y2FKNGETYZDKNI"
    assert page.items[0].resource_uri == "/v1/Account/MA/VerifiedCallerId/917691021365"


@pytest.mark.parametrize(
    "body",
    [
        {"objects": []},
        {"meta": {"total_count": "many"}, "objects": []},
        {"meta": {}, "objects": [{"alias": "no number"}]},
        {"meta": {}, "objects": [{"phone_number": "+1415", "created_at": "soon"}]},
    ],
)
def test_malformed_list_is_unexpected_response(body: dict[str, object]) -> None:
    with pytest.raises(UnexpectedResponseError):
        Page.from_api(body, limit=20, offset=0)


def test_initiation_needs_a_uuid() -> None:
    ok = Initiation.from_api("+14155550123", {"verification_uuid": "u", "api_id": "a"})
    assert ok.verification_uuid == "u" and ok.message is None
    with pytest.raises(UnexpectedResponseError):
        Initiation.from_api("+14155550123", {"message": "sent"})
