"""The webhook receiver over real HTTP: requests signed by the official plivo SDK, forged ones,
unsigned, oversized and malformed ones. Refused requests store nothing; nothing answers 5xx."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from plivo.utils import validate_signature
from plivo.utils.signature_v3 import (
    construct_get_url,
    construct_post_url,
    get_signature_v3,
    validate_v3_signature,
)

from callerid.inbox import WebhookServer
from callerid.plivo.signature import sign_v2
from tests.inbox_support import ACCOUNT, all_messages, make_engine

MAIN_TOKEN = "sandbox-auth-token"
SUB, SUB_TOKEN = "SASANDBOXSUBACCT0001", "sandbox-subaccount-token-1"
TOKENS = {ACCOUNT: MAIN_TOKEN, SUB: SUB_TOKEN}
NONCE = "84629150377212840591"


def sdk_sign(method: str, url: str, params: dict[str, str], token: str) -> str:
    """X-Plivo-Signature-V3 exactly as the official SDK computes it."""
    if method == "GET":
        base = construct_get_url(url, dict(params))
    else:
        base = construct_post_url(url, dict(params))
    signature = get_signature_v3(token, base.decode(), NONCE).decode()
    assert validate_v3_signature(method, url, NONCE, token, signature, dict(params))
    return signature


def sms(text: str = "Your verification code is 4821", **extra: str) -> dict[str, str]:
    return {
        "From": "14155550123",
        "To": "15005550100",
        "Text": text,
        "Type": "sms",
        "MessageUUID": str(uuid.uuid4()),
        "Units": "1",
        "TotalRate": "0.00000",
        "TotalAmount": "0.00000",
        "MessageIntent": "",
        "PowerpackUUID": "",
        **extra,
    }


def headers_for(
    url: str,
    params: dict[str, str],
    owner: str | None = MAIN_TOKEN,
    main: str | None = MAIN_TOKEN,
    method: str = "POST",
) -> dict[str, str]:
    headers = {"X-Plivo-Signature-V3-Nonce": NONCE}
    if owner:
        headers["X-Plivo-Signature-V3"] = sdk_sign(method, url, params, owner)
    if main:
        headers["X-Plivo-Signature-Ma-V3"] = sdk_sign(method, url, params, main)
    return headers


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    return make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")


@pytest.fixture
def hook(engine: sa.Engine) -> Iterator[WebhookServer]:
    with WebhookServer(engine, ACCOUNT, TOKENS, MAIN_TOKEN) as server:
        yield server


def post(url: str, params: dict[str, str], headers: dict[str, str]) -> httpx.Response:
    return httpx.post(url, data=params, headers=headers, timeout=10)


def test_sdk_signed_message_is_stored_once(hook: WebhookServer, engine: sa.Engine) -> None:
    assert hook.url.endswith("/plivo/sms")
    params = sms()
    first = post(hook.url, params, headers_for(hook.url, params))
    assert first.status_code == 200 and "<Response>" in first.text
    replay = post(hook.url, params, headers_for(hook.url, params))
    assert replay.status_code == 200
    rows = all_messages(engine)
    assert len(rows) == 1
    row = rows[0]
    assert (row.source, row.external_id, row.account) == ("webhook", params["MessageUUID"], ACCOUNT)
    assert (row.from_number, row.to_number, row.status) == ("14155550123", "15005550100", "new")
    assert row.text == params["Text"]


@pytest.mark.parametrize(
    ("owner", "main"),
    [
        (MAIN_TOKEN, None),  # V3 alone, by the main account owning the number
        (SUB_TOKEN, MAIN_TOKEN),  # a subaccount's number
        ("token-of-an-unknown-subaccount", MAIN_TOKEN),  # Ma-V3 alone reproduces (plivo-api §4.2)
        (None, MAIN_TOKEN),
    ],
)
def test_either_v3_header_is_enough(
    hook: WebhookServer, engine: sa.Engine, owner: str | None, main: str | None
) -> None:
    params = sms()
    assert post(hook.url, params, headers_for(hook.url, params, owner, main)).status_code == 200
    assert len(all_messages(engine)) == 1


def test_get_with_query_parameters(hook: WebhookServer, engine: sa.Engine) -> None:
    params = sms()
    headers = headers_for(hook.url, params, method="GET")
    response = httpx.get(hook.url, params=params, headers=headers, timeout=10)
    assert response.status_code == 200
    assert [r.external_id for r in all_messages(engine)] == [params["MessageUUID"]]


def test_forged_and_unsigned_requests_store_nothing(hook: WebhookServer, engine: sa.Engine) -> None:
    params = sms()
    good = headers_for(hook.url, params)
    tampered = {**params, "Text": "Your verification code is 9999"}
    other_url = hook.url.replace("/plivo/sms", "/elsewhere")
    cases = {
        "wrong token": (params, headers_for(hook.url, params, "nope", "nope")),
        "tampered body": (tampered, good),
        "signed for another URL": (params, headers_for(other_url, params)),
        "no nonce": (params, {k: v for k, v in good.items() if not k.endswith("Nonce")}),
        "other nonce": (params, {**good, "X-Plivo-Signature-V3-Nonce": "1"}),
        "GET signature on a POST": (params, headers_for(hook.url, params, method="GET")),
    }
    for name, (body, headers) in cases.items():
        assert post(hook.url, body, headers).status_code == 403, name
    assert post(hook.url, params, {}).status_code == 401
    assert all_messages(engine) == []


def test_a_refused_request_leaves_a_warning_without_its_text(
    hook: WebhookServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`inbox serve` shows warnings: a refused SMS (lost unless Plivo retries) leaves a trace."""
    from callerid.serving import runner
    from callerid.serving.logs import RepeatLimiter

    # the process's limiter has seen this kind of warning from the tests before (5 a minute)
    monkeypatch.setattr(runner._LOG_FILTER, "limiter", RepeatLimiter())
    params = sms("Your verification code is 482193")
    with caplog.at_level(logging.WARNING, logger="callerid.inbox.webhook"):
        assert post(hook.url, params, {}).status_code == 401
        forged = headers_for(hook.url, params, "nope", "nope")
        assert post(hook.url, params, forged).status_code == 403
    said = [r.getMessage() for r in caplog.records if r.name == "callerid.inbox.webhook"]
    assert said == [
        "webhook request refused (401): missing Plivo signature",
        "webhook request refused (403): invalid Plivo signature",
    ]
    assert "482193" not in caplog.text


def test_v2_only_when_allowed_and_no_v3(engine: sa.Engine) -> None:
    params = sms()
    with WebhookServer(engine, ACCOUNT, TOKENS, MAIN_TOKEN) as strict:
        signature = sign_v2(strict.url, NONCE, MAIN_TOKEN)
        v2 = {"X-Plivo-Signature-V2": signature, "X-Plivo-Signature-V2-Nonce": NONCE}
        assert validate_signature(strict.url, NONCE, signature, MAIN_TOKEN)  # the SDK agrees
        assert post(strict.url, params, v2).status_code == 401
    with WebhookServer(engine, ACCOUNT, TOKENS, MAIN_TOKEN, allow_v2=True) as lenient:
        v2 = {
            "X-Plivo-Signature-V2": sign_v2(lenient.url, NONCE, MAIN_TOKEN),
            "X-Plivo-Signature-V2-Nonce": NONCE,
        }
        bad_v3 = {**v2, "X-Plivo-Signature-V3": "forged=", "X-Plivo-Signature-V3-Nonce": NONCE}
        assert post(lenient.url, params, bad_v3).status_code == 403  # V3 present: V2 not asked
        forged = {**v2, "X-Plivo-Signature-V2": sign_v2(lenient.url, NONCE, "nope")}
        assert post(lenient.url, params, forged).status_code == 403
        assert post(lenient.url, params, v2).status_code == 200
    assert len(all_messages(engine)) == 1


def test_signatures_are_over_the_public_url(engine: sa.Engine) -> None:
    public = "https://hooks.example.com/plivo/sms/inbound/?tenant=acme"
    with WebhookServer(engine, ACCOUNT, TOKENS, MAIN_TOKEN, public_url=public) as hook:
        assert hook.url == public
        local = f"{hook.listen_url}/plivo/sms/inbound/?tenant=acme"
        params = sms()
        assert post(local, params, headers_for(local, params)).status_code == 403
        assert post(local, params, headers_for(public, params)).status_code == 200
    assert len(all_messages(engine)) == 1


def test_oversized_and_malformed_requests(hook: WebhookServer, engine: sa.Engine) -> None:
    url = hook.url
    huge = sms(text="x" * 20_000)
    assert post(url, huge, headers_for(url, huge)).status_code == 413
    too_long = sms(text="x" * 1601)
    assert post(url, too_long, headers_for(url, too_long)).status_code == 400
    no_uuid = {k: v for k, v in sms().items() if k != "MessageUUID"}
    assert post(url, no_uuid, headers_for(url, no_uuid)).status_code == 400
    twice = httpx.post(
        url, content=b"From=1&From=2", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert twice.status_code == 401  # unsigned, so the duplicate field never gets read
    as_json = httpx.post(url, json=sms(), headers=headers_for(url, sms()))
    assert as_json.status_code == 415
    latin1 = httpx.post(
        url,
        content="Text=caf\xe9".encode("latin-1"),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert latin1.status_code == 400
    assert httpx.put(url, data=sms()).status_code == 405
    assert httpx.post(url + "x", data=sms()).status_code == 404
    assert all_messages(engine) == []


def test_duplicate_fields_in_a_signed_form(hook: WebhookServer, engine: sa.Engine) -> None:
    body = "From=14155550123&From=14155550124&To=1&Text=code+4821&MessageUUID=dup"
    params = {"From": ["14155550123", "14155550124"], "To": ["1"], "Text": ["code 4821"]}
    params["MessageUUID"] = ["dup"]
    from callerid.plivo.signature import sign_v3

    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Plivo-Signature-V3": sign_v3("POST", hook.url, params, NONCE, MAIN_TOKEN),
        "X-Plivo-Signature-V3-Nonce": NONCE,
    }
    assert httpx.post(hook.url, content=body, headers=headers).status_code == 400
    assert all_messages(engine) == []


def test_database_outage_is_503_not_a_crash(tmp_path: Path) -> None:
    no_tables = sa.create_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    with WebhookServer(no_tables, ACCOUNT, TOKENS, MAIN_TOKEN) as hook:
        params = sms()
        response = post(hook.url, params, headers_for(hook.url, params))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"


def test_a_nul_in_the_text_is_stored_not_retried_forever(db_url: str) -> None:
    """PostgreSQL refuses NUL in text (psycopg DataError): the answer was 503, so Plivo would
    retry the message for ever and it would never be stored. NUL is stored as U+FFFD."""
    engine = make_engine(db_url)
    with WebhookServer(engine, ACCOUNT, TOKENS, MAIN_TOKEN) as hook:
        params = sms("Your verification code\x00 is 4821")
        response = post(hook.url, params, headers_for(hook.url, params))
    assert response.status_code == 200
    (row,) = all_messages(engine)
    assert (row.external_id, row.text) == (
        params["MessageUUID"],
        "Your verification code\ufffd is 4821",
    )
