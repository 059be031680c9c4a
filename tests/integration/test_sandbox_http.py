"""The sandbox API over real HTTP (httpx -> uvicorn on 127.0.0.1): the wire format, plivo-api.md."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from callerid.sandbox import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, SandboxBackend, SandboxServer
from callerid.sandbox.state import DEFAULT_SUBACCOUNTS

MAIN = DEFAULT_AUTH_ID
SUB1, SUB1_TOKEN = "SASANDBOXSUBACCT0001", "sandbox-subaccount-token-1"
BASE = f"/v1/Account/{MAIN}/VerifiedCallerId"
NUMBER = "+14155551234"


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(
        SandboxBackend(seed=11, rate=(100_000, 1.0), subaccounts=DEFAULT_SUBACCOUNTS)
    ) as running:
        yield running


@pytest.fixture
def sandbox(server: SandboxServer) -> SandboxServer:
    server.backend.reset()
    server.faults.clear()
    return server


@pytest.fixture
def api(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, auth=(MAIN, DEFAULT_AUTH_TOKEN), timeout=5) as client:
        yield client


def assert_error(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"api_id", "error"} and body["error"] == message


def verify(api: httpx.Client, sandbox: SandboxServer, number: str = NUMBER, **body: Any) -> Any:
    started = api.post(f"{BASE}/", json={"phone_number": number, **body})
    assert started.status_code == 201, started.text
    uuid = started.json()["verification_uuid"]
    otp = sandbox.backend.otp_for(uuid)
    done = api.post(f"{BASE}/Verification/{uuid}/", json={"verification_uuid": uuid, "otp": otp})
    assert done.status_code == 200, done.text
    return done.json()


def test_all_six_operations_with_plivo_shapes(api: httpx.Client, sandbox: SandboxServer) -> None:
    started = api.post(f"{BASE}/", json={"phone_number": NUMBER, "alias": "desk", "channel": "sms"})
    assert started.status_code == 201
    assert set(started.json()) == {"api_id", "message", "verification_uuid"}
    uuid = started.json()["verification_uuid"]
    otp = sandbox.backend.otp_for(uuid)
    done = api.post(f"{BASE}/Verification/{uuid}/", json={"verification_uuid": uuid, "otp": otp})
    assert done.status_code == 200
    assert set(done.json()) >= {"alias", "api_id", "channel", "country", "created_at"}
    assert done.json()["phone_number"] == NUMBER and done.json()["verification_uuid"] == uuid

    got = api.get(f"{BASE}/{NUMBER}/")
    assert got.status_code == 200
    assert set(got.json()) == {
        "alias",
        "api_id",
        "country",
        "created_at",
        "modified_at",
        "phone_number",
        "subaccount",
        "verification_uuid",
    }
    updated = api.post(f"{BASE}/{NUMBER}/", json={"phone_number": NUMBER, "alias": "front"})
    assert updated.status_code == 200 and updated.json()["alias"] == "front"
    listed = api.get(f"{BASE}/", params={"limit": 20, "offset": 0})
    assert listed.status_code == 200
    [obj] = listed.json()["objects"]
    assert obj["resource_uri"] == f"/v1/Account/{MAIN}/VerifiedCallerId/14155551234"
    assert "api_id" not in obj and "channel" not in obj
    deleted = api.request("DELETE", f"{BASE}/{NUMBER}/", json={"phone_number": NUMBER})
    assert deleted.status_code == 204 and deleted.content == b""
    assert_error(api.get(f"{BASE}/{NUMBER}/"), 404, "not found")


@pytest.mark.parametrize(
    "path_number", ["+14155551234", "14155551234", "%2B14155551234", "+14155551234/"]
)
@pytest.mark.parametrize("slash", ["", "/"])
def test_numbers_and_trailing_slashes_all_reach_the_same_caller_id(
    api: httpx.Client, sandbox: SandboxServer, path_number: str, slash: str
) -> None:
    sandbox.backend.seed_verified(NUMBER, alias="x")
    path = f"{BASE}/{path_number.rstrip('/')}{slash}"
    assert api.get(path).json()["phone_number"] == NUMBER
    assert api.post(path, json={"alias": "y"}).json()["alias"] == "y"
    assert api.delete(path).status_code == 204


@pytest.mark.parametrize("slash", ["", "/"])
def test_initiate_list_and_complete_without_trailing_slash(
    api: httpx.Client, sandbox: SandboxServer, slash: str
) -> None:
    started = api.post(BASE + slash, json={"phone_number": NUMBER})
    uuid = started.json()["verification_uuid"]
    otp = sandbox.backend.otp_for(uuid)
    assert api.post(f"{BASE}/Verification/{uuid}{slash}", json={"otp": otp}).status_code == 200
    assert api.get(BASE + slash).json()["meta"]["total_count"] == 1


def test_form_bodies_unknown_keys_and_empty_strings(
    api: httpx.Client, sandbox: SandboxServer
) -> None:
    go_style = {
        "phone_number": NUMBER,
        "alias": "",
        "channel": "",
        "subaccount": "",
        "country": "",
        "account_id": 0,
        "auth_id": "",
        "auth_token": "",
        "something_new": {"nested": True},
    }
    started = api.post(f"{BASE}/", json=go_style)
    assert started.status_code == 201, started.text
    uuid = started.json()["verification_uuid"]
    otp = sandbox.backend.otp_for(uuid)
    done = api.post(f"{BASE}/Verification/{uuid}/", data={"otp": otp})  # form, tolerated
    assert (
        done.status_code == 200 and done.json()["alias"] == "" and done.json()["channel"] == "sms"
    )
    assert done.json()["subaccount"] == ""


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "request body is not valid JSON"),
        (b"[1, 2]", "request body must be a JSON object"),
    ],
)
def test_bad_bodies_get_400(api: httpx.Client, content: bytes, message: str) -> None:
    response = api.post(f"{BASE}/", content=content, headers={"Content-Type": "application/json"})
    assert_error(response, 400, message)


JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("content", [b'""', b"null", b"{not json", b"[1, 2]"])
def test_get_and_delete_ignore_their_bodies(
    api: httpx.Client, sandbox: SandboxServer, content: bytes
) -> None:
    """Plivo's SDKs send a JSON body even on body-less calls (issue 13): GET and DELETE ignore
    it, so a delete works and an unknown number is 404, never 400."""
    verify(api, sandbox)
    digits = NUMBER.lstrip("+")
    got = api.request("GET", f"{BASE}/{digits}/", content=content, headers=JSON)
    assert got.status_code == 200 and got.json()["phone_number"] == NUMBER
    listed = api.request("GET", f"{BASE}/", content=content, headers=JSON)
    assert listed.status_code == 200 and listed.json()["meta"]["total_count"] == 1
    deleted = api.request("DELETE", f"{BASE}/{digits}/", content=content, headers=JSON)
    assert deleted.status_code == 204, deleted.text
    again = api.request("DELETE", f"{BASE}/{digits}/", content=content, headers=JSON)
    assert_error(again, 404, "not found")


@pytest.mark.parametrize("content", [b'""', b"null", b' "" '])
def test_an_empty_json_body_is_no_body(api: httpx.Client, content: bytes) -> None:
    response = api.post(f"{BASE}/", content=content, headers=JSON)
    assert_error(response, 400, "phone_number is required")
    unknown = api.post(f"{BASE}/12025550199/", content=content, headers=JSON)
    assert_error(unknown, 404, "not found")


def test_every_error_of_section_0_over_http(api: httpx.Client, sandbox: SandboxServer) -> None:
    uuid = api.post(f"{BASE}/", json={"phone_number": NUMBER}).json()["verification_uuid"]
    otp = sandbox.backend.otp_for(uuid)
    wrong = f"{(int(otp) + 5) % 10000:04d}"
    for _ in range(3):
        assert_error(
            api.post(f"{BASE}/Verification/{uuid}/", json={"otp": wrong}), 400, "invalid otp"
        )
    assert_error(
        api.post(f"{BASE}/Verification/{uuid}/", json={"otp": otp}),
        400,
        "maximum otp attempts exceeded",
    )
    assert_error(
        api.post(f"{BASE}/Verification/6f1c8a36-0000-4000-8000-000000000000/", json={"otp": otp}),
        404,
        "verification not found",
    )
    uuid = api.post(f"{BASE}/", json={"phone_number": NUMBER}).json()["verification_uuid"]
    sandbox.backend.clock.advance(15 * 60 + 1)  # type: ignore[attr-defined]
    assert_error(
        api.post(f"{BASE}/Verification/{uuid}/", json={"otp": sandbox.backend.otp_for(uuid)}),
        400,
        "verification expired",
    )
    verify(api, sandbox)
    assert_error(
        api.post(f"{BASE}/", json={"phone_number": NUMBER}), 400, "phone number is already verified"
    )
    assert_error(api.post(f"{BASE}/", json={"phone_number": "+1234"}), 400, "invalid phone number")
    assert_error(api.post(f"{BASE}/", json={}), 400, "phone_number is required")
    for method in ("GET", "POST", "DELETE"):
        assert_error(api.request(method, f"{BASE}/14155559999/"), 404, "not found")
    assert_error(api.get(f"{BASE}/", params={"limit": 21}), 400, "limit must be between 1 and 20")
    assert_error(api.get(f"{BASE}/", params={"limit": 0}), 400, "limit must be between 1 and 20")
    assert_error(api.get(f"{BASE}/", params={"offset": -1}), 400, "offset must not be negative")


def test_a_new_initiate_invalidates_the_older_verification(
    api: httpx.Client, sandbox: SandboxServer
) -> None:
    first = api.post(f"{BASE}/", json={"phone_number": NUMBER}).json()["verification_uuid"]
    second = api.post(f"{BASE}/", json={"phone_number": NUMBER}).json()["verification_uuid"]
    old = api.post(f"{BASE}/Verification/{first}/", json={"otp": sandbox.backend.otp_for(first)})
    assert_error(old, 404, "verification not found")
    new = api.post(f"{BASE}/Verification/{second}/", json={"otp": sandbox.backend.otp_for(second)})
    assert new.status_code == 200


@pytest.mark.parametrize(
    ("auth", "path_account"),
    [
        (None, MAIN),
        ((MAIN, "wrong-token"), MAIN),
        ((SUB1, SUB1_TOKEN), MAIN),  # valid credentials for another account than the path's
        ((MAIN, DEFAULT_AUTH_TOKEN), SUB1),
    ],
)
def test_basic_auth_must_match_the_path(
    sandbox: SandboxServer, auth: tuple[str, str] | None, path_account: str
) -> None:
    url = f"{sandbox.url}/v1/Account/{path_account}/VerifiedCallerId/"
    response = httpx.get(url, auth=auth) if auth else httpx.get(url)
    assert_error(response, 401, "authentication failed")


def test_subaccount_credentials_see_only_their_caller_ids(
    api: httpx.Client, sandbox: SandboxServer
) -> None:
    sandbox.backend.seed_verified("+14155550001")
    sandbox.backend.seed_verified("+14155550002", subaccount=SUB1)
    verify(api, sandbox, "+14155550003", subaccount=SUB1)
    sub_base = f"/v1/Account/{SUB1}/VerifiedCallerId"
    with httpx.Client(base_url=sandbox.url, auth=(SUB1, SUB1_TOKEN)) as sub:
        listed = sub.get(f"{sub_base}/").json()
        assert sorted(o["phone_number"] for o in listed["objects"]) == [
            "+14155550002",
            "+14155550003",
        ]
        assert {o["resource_uri"].split("/")[3] for o in listed["objects"]} == {SUB1}
        assert_error(sub.get(f"{sub_base}/14155550001/"), 404, "not found")
        assert_error(
            sub.post(
                f"{sub_base}/",
                json={"phone_number": "+14155550009", "subaccount": "SASANDBOXSUBACCT0002"},
            ),
            400,
            "subaccount can only be set with main account credentials",
        )
    assert api.get(f"{BASE}/").json()["meta"]["total_count"] == 3
    assert api.get(f"{BASE}/", params={"subaccount": SUB1}).json()["meta"]["total_count"] == 2


def test_pagination_over_45_caller_ids_by_following_next(
    api: httpx.Client, sandbox: SandboxServer
) -> None:
    numbers = [f"+1415555{i:04d}" for i in range(45)]
    for number in numbers:
        sandbox.backend.seed_verified(number, alias="bulk")
    sandbox.backend.seed_verified("+14155559999", alias="other")
    seen: list[str] = []
    url: str | None = f"{BASE}/?alias=bulk"
    previous: list[str | None] = []
    while url:
        page = api.get(url).json()
        seen += [o["phone_number"] for o in page["objects"]]
        previous.append(page["meta"]["previous"])
        assert page["meta"]["total_count"] == 45 and page["meta"]["limit"] == 20
        url = page["meta"]["next"]
    assert seen == numbers[::-1]  # newest first
    assert previous[0] is None
    assert previous[1] == f"/v1/Account/{MAIN}/VerifiedCallerId/?limit=20&offset=0&alias=bulk"
    last = api.get(f"{BASE}/", params={"alias": "bulk", "limit": 20, "offset": 40}).json()
    assert len(last["objects"]) == 5 and last["meta"]["next"] is None


def test_unknown_methods_and_paths_answer_json(api: httpx.Client) -> None:
    assert_error(api.put(f"{BASE}/14155551234/"), 405, "method not allowed")
    assert_error(api.get("/v1/Account/nope"), 404, "not found")


def test_429_when_the_rolling_window_is_full() -> None:
    with (
        SandboxServer(SandboxBackend(rate=(5, 60.0))) as sandbox,
        httpx.Client(base_url=sandbox.url, auth=(MAIN, DEFAULT_AUTH_TOKEN)) as api,
    ):
        statuses = [api.get(f"{BASE}/").status_code for _ in range(8)]
        assert statuses == [200] * 5 + [429] * 3
        assert_error(api.get(f"{BASE}/"), 429, "too many requests")
        assert "retry-after" not in api.get(f"{BASE}/").headers  # Plivo sends none
        stats = httpx.get(f"{sandbox.url}/_sandbox/stats").json()
        assert stats["total_requests"] == 10 and stats["rate_limited"] == 5
