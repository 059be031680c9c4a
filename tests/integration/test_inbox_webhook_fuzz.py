"""Random bodies, headers, methods and paths at the webhook: it stores nothing and never 5xx's."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callerid.inbox import WebhookServer
from callerid.plivo.signature import sign_v3
from tests.inbox_support import ACCOUNT, all_messages, make_engine

TOKEN = "sandbox-auth-token"
FIELDS = ["From", "To", "Text", "MessageUUID", "Type", "Units", "MessageIntent", "x"]
header_text = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=80)
signature_headers = st.dictionaries(
    st.sampled_from(
        [
            "X-Plivo-Signature-V3",
            "X-Plivo-Signature-Ma-V3",
            "X-Plivo-Signature-V3-Nonce",
            "X-Plivo-Signature-V2",
            "X-Plivo-Signature-Ma-V2",
            "X-Plivo-Signature-V2-Nonce",
            "Content-Length",
            "Transfer-Encoding",
            "X-Anything",
        ]
    ),
    header_text,
    max_size=6,
)
content_types = st.sampled_from(
    [
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=latin-1",
        "application/json",
        "multipart/form-data; boundary=x",
        "text/plain",
        "",
    ]
)
forms = st.dictionaries(
    st.sampled_from(FIELDS) | st.text(max_size=10), st.text(max_size=200), max_size=10
)
bodies = st.one_of(
    st.binary(max_size=4096),
    forms.map(lambda f: urlencode(f).encode()),
    st.binary(min_size=17_000, max_size=20_000),
)


def test_fuzzed_requests_store_nothing_and_never_5xx(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    statuses: set[int] = set()
    with WebhookServer(engine, ACCOUNT, {ACCOUNT: TOKEN}, TOKEN, allow_v2=True) as hook:
        path = hook.url.removeprefix(hook.listen_url)
        client = httpx.Client(base_url=hook.listen_url, timeout=10)

        @settings(
            max_examples=200,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            database=None,
        )
        @given(
            method=st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE", "HEAD"]),
            where=st.sampled_from([path, path, path + "/", "/", path + "?From=1&Text=1234"]),
            headers=signature_headers,
            content_type=content_types,
            body=bodies,
            form=forms,
            sign_wrong=st.booleans(),
        )
        def probe(
            method: str,
            where: str,
            headers: dict[str, str],
            content_type: str,
            body: bytes,
            form: dict[str, str],
            sign_wrong: bool,
        ) -> None:
            sent = dict(headers)
            if content_type:
                sent["Content-Type"] = content_type
            if sign_wrong:  # a well-formed form, signed with a token we do not hold
                body = urlencode(form).encode()
                sent["Content-Type"] = "application/x-www-form-urlencoded"
                params = {k: [v] for k, v in form.items()}
                sent["X-Plivo-Signature-V3"] = sign_v3("POST", hook.url, params, "1", "other")
                sent["X-Plivo-Signature-V3-Nonce"] = "1"
            sent.pop("Content-Length", None)  # httpx computes it; a lie would hang the request
            sent.pop("Transfer-Encoding", None)
            try:
                response = client.request(method, where, content=body, headers=sent)
            except httpx.RemoteProtocolError:
                return  # the HTTP layer itself refused the bytes: nothing reached our code
            statuses.add(response.status_code)
            assert response.status_code < 500, (response.status_code, response.text[:200])

        probe()
        client.close()
    assert all_messages(engine) == []
    assert statuses & {401, 403} and statuses <= set(range(400, 500))
