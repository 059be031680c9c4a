"""Plivo webhook signatures: X-Plivo-Signature-V3 (and the legacy V2).

Implements plivo-api.md §4.3-4.5. The sandbox signs with `sign_v3`; the inbox webhook verifies
with `verify_v3`, which strips whitespace around comma-separated signatures and compares in
constant time (the official helper does neither).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qs, urlsplit

ParamValue = str | Iterable[str]
Params = Mapping[str, ParamValue]


def _values(value: ParamValue) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _base(uri: str) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(uri)
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    query = parse_qs(parts.query, keep_blank_values=True)
    return base, query


def _sorted_query(params: Mapping[str, list[str]]) -> str:
    return "&".join(f"{k}={v}" for k in sorted(params) for v in sorted(params[k]))


def string_to_sign_v3(method: str, uri: str, params: Params | None, nonce: str) -> str:
    base, query = _base(uri)
    plain = {k: _values(v) for k, v in (params or {}).items()}
    if method.upper() == "GET":
        merged = dict(plain)
        merged.update(query)  # the URI's own query wins on equal keys
        sq = _sorted_query(merged)
        prefix = base + (f"?{sq}" if sq else "")
    elif not plain:
        prefix = base + (f"?{_sorted_query(query)}" if query else "")
    else:
        body = "".join(f"{k}{v}" for k in sorted(plain) for v in sorted(plain[k]))
        prefix = base + "?" + (f"{_sorted_query(query)}." if query else "") + body
    return f"{prefix}.{nonce}"


def _hmac_b64(token: str, message: str) -> str:
    digest = hmac.new(token.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def sign_v3(method: str, uri: str, params: Params | None, nonce: str, auth_token: str) -> str:
    return _hmac_b64(auth_token, string_to_sign_v3(method, uri, params, nonce))


def _any_matches(expected: str, header_value: str) -> bool:
    found = False
    for candidate in header_value.split(","):
        # no early exit: the time taken does not depend on which candidate matched
        found |= hmac.compare_digest(candidate.strip().encode(), expected.encode())
    return found


def verify_v3(
    method: str,
    uri: str,
    params: Params | None,
    nonce: str,
    auth_token: str,
    header_value: str,
) -> bool:
    if not (nonce and header_value and auth_token):
        return False
    return _any_matches(sign_v3(method, uri, params, nonce, auth_token), header_value)


def sign_v2(uri: str, nonce: str, auth_token: str) -> str:
    parts = urlsplit(uri)
    return _hmac_b64(auth_token, f"{parts.scheme}://{parts.netloc}{parts.path}{nonce}")


def verify_v2(uri: str, nonce: str, auth_token: str, header_value: str) -> bool:
    if not (nonce and header_value and auth_token):
        return False
    return _any_matches(sign_v2(uri, nonce, auth_token), header_value)
