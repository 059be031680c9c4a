from __future__ import annotations

import pytest

from callerid.plivo.signature import sign_v2, sign_v3, string_to_sign_v3, verify_v2, verify_v3

OFFICIAL_TOKEN = "Y2Q2ZDgxZmY5YWRiOTI5YmQ1Njg0MTAxZWIyOTc4"
OFFICIAL_NONCE = "31627761595286130198"
OFFICIAL_PARAMS = {
    "Direction": "outbound",
    "From": "19792014278",
    "ALegUUID": "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36",
    "CallStatus": "in-progress",
    "BillRate": "0.002",
    "ParentAuthID": "MANWVLYTK4ZWU1YTY4QA",
    "To": "sip:PlivoSignature382029104058171078704104@phone-qa.voice.plivodev.com",
    "ALegRequestUUID": "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36",
    "CallUUID": "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36",
    "RequestUUID": "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36",
    "SIP-H-To": "<sip:PlivoSignature382029104058171078704104@52.9.11.55;transport=udp>;tag=1",
    "SessionStart": "2020-04-08 11:34:33.238707",
    "Event": "StartApp",
}
OFFICIAL_URL = "https://plivobin.non-prod.plivops.com/api/v1/validate_signature03.xml"

SMS_TOKEN = "MjY0ZmE5ZDE3YjA0NzA0NzE1ZDZmOGE2ZGNhNjRm"
SMS_NONCE = "84629150377212840591"
SMS_PARAMS = {
    "From": "14155550123",
    "To": "14155550987",
    "Text": "Your code is 4821",
    "Type": "sms",
    "MessageUUID": "7f3c2a1e-5b6d-4e8f-9a0b-1c2d3e4f5a6b",
    "Units": "1",
    "TotalRate": "0.00000",
    "TotalAmount": "0.00000",
    "MessageIntent": "",
    "PowerpackUUID": "",
}
SMS_URL = "https://hooks.example.com/plivo/sms/inbound/"

VECTORS = [
    (
        "POST",
        OFFICIAL_URL + "/?a=b&c=d",
        OFFICIAL_PARAMS,
        OFFICIAL_NONCE,
        OFFICIAL_TOKEN,
        "k7Pusd4OxCIjR5IfA9iedDNu/h/gbdYqdzG/MiYtd1c=",
    ),
    (
        "GET",
        OFFICIAL_URL + "/?a=b&c=d",
        OFFICIAL_PARAMS,
        OFFICIAL_NONCE,
        OFFICIAL_TOKEN,
        "UBq8jAtd32wR8EK9VgxbBn4n5rpI/l1H9iN4WfSEHFQ=",
    ),
    (
        "POST",
        OFFICIAL_URL,
        OFFICIAL_PARAMS,
        OFFICIAL_NONCE,
        OFFICIAL_TOKEN,
        "iAjE5QqI37mbkYe4w3jTMudqEzbDufdqi7sYwTu64e0=",
    ),
    (
        "GET",
        OFFICIAL_URL,
        OFFICIAL_PARAMS,
        OFFICIAL_NONCE,
        OFFICIAL_TOKEN,
        "i/MQsaQSAd6fiKhOh2qeeeLHZ9faldADSb3/7+Akfbc=",
    ),
    (
        "POST",
        SMS_URL,
        SMS_PARAMS,
        SMS_NONCE,
        SMS_TOKEN,
        "ygewXfYamM5bLffVET2GhC1KT+uimZU9NqYZRAByQ2c=",
    ),
    (
        "POST",
        SMS_URL + "?tenant=acme&batch=7",
        SMS_PARAMS,
        SMS_NONCE,
        SMS_TOKEN,
        "iwLkt+pFIEkPRyyxLAr9HvULbHZzQXu9fc7Uvxsswbs=",
    ),
    (
        "GET",
        SMS_URL,
        SMS_PARAMS,
        SMS_NONCE,
        SMS_TOKEN,
        "7+Mkwx6ZgxBdJqW3GLl7wO3DtawPVRd+GmS1AOAbxTY=",
    ),
]


@pytest.mark.parametrize(("method", "uri", "params", "nonce", "token", "expected"), VECTORS)
def test_published_vectors(method, uri, params, nonce, token, expected):
    assert sign_v3(method, uri, params, nonce, token) == expected
    assert verify_v3(method, uri, params, nonce, token, expected)


def test_string_to_sign_matches_the_documented_one():
    s = string_to_sign_v3("POST", SMS_URL, SMS_PARAMS, SMS_NONCE)
    assert s == (
        "https://hooks.example.com/plivo/sms/inbound/?From14155550123MessageIntent"
        "MessageUUID7f3c2a1e-5b6d-4e8f-9a0b-1c2d3e4f5a6bPowerpackUUIDTextYour code is 4821"
        "To14155550987TotalAmount0.00000TotalRate0.00000TypesmsUnits1.84629150377212840591"
    )


def test_verify_accepts_any_of_several_signatures_with_spaces():
    good = sign_v3("POST", SMS_URL, SMS_PARAMS, SMS_NONCE, SMS_TOKEN)
    assert verify_v3("POST", SMS_URL, SMS_PARAMS, SMS_NONCE, SMS_TOKEN, f"bogus=, {good}")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: {**p, "Text": "Your code is 4822"},
        lambda p: {**p, "From": "14155550124"},
        lambda p: {k: v for k, v in p.items() if k != "Units"},
    ],
)
def test_verify_rejects_a_tampered_body(mutate):
    good = sign_v3("POST", SMS_URL, SMS_PARAMS, SMS_NONCE, SMS_TOKEN)
    assert not verify_v3("POST", SMS_URL, mutate(SMS_PARAMS), SMS_NONCE, SMS_TOKEN, good)


def test_verify_rejects_wrong_token_nonce_url_and_empty_values():
    good = sign_v3("POST", SMS_URL, SMS_PARAMS, SMS_NONCE, SMS_TOKEN)
    assert not verify_v3("POST", SMS_URL, SMS_PARAMS, SMS_NONCE, "other-token", good)
    assert not verify_v3("POST", SMS_URL, SMS_PARAMS, "1", SMS_TOKEN, good)
    assert not verify_v3("POST", SMS_URL + "x", SMS_PARAMS, SMS_NONCE, SMS_TOKEN, good)
    assert not verify_v3("POST", SMS_URL, SMS_PARAMS, "", SMS_TOKEN, good)
    assert not verify_v3("POST", SMS_URL, SMS_PARAMS, SMS_NONCE, SMS_TOKEN, "")


def test_non_ascii_text_is_signed_as_utf8():
    params = {**SMS_PARAMS, "Text": "Ваш код 4821"}
    sig = sign_v3("POST", SMS_URL, params, SMS_NONCE, SMS_TOKEN)
    assert verify_v3("POST", SMS_URL, params, SMS_NONCE, SMS_TOKEN, sig)


def test_v2_vector():
    expected = "ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc="
    assert sign_v2("https://answer.url", "12345", "my_auth_token") == expected
    assert verify_v2("https://answer.url?x=1", "12345", "my_auth_token", expected)
    assert not verify_v2("https://answer.url", "12346", "my_auth_token", expected)
