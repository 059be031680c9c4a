"""Checking a Plivo inbound-SMS webhook request before anything is stored (plivo-api.md §4).

V3: `X-Plivo-Signature-V3` is checked against every configured account token (the owning account
may be the main account or any subaccount) and `X-Plivo-Signature-Ma-V3` against the main token;
one valid header is enough, because which of the two reproduces differs between Plivo's products
(§4.2). V2 is considered only when no V3 header came and the operator allowed it: V2 signs the
URL alone, not the body. Every candidate is computed and compared in constant time, whatever
matched first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from callerid.plivo.signature import verify_v2, verify_v3

V3 = "x-plivo-signature-v3"
MA_V3 = "x-plivo-signature-ma-v3"
V3_NONCE = "x-plivo-signature-v3-nonce"
V2 = "x-plivo-signature-v2"
MA_V2 = "x-plivo-signature-ma-v2"
V2_NONCE = "x-plivo-signature-v2-nonce"
MAX_HEADER_CHARS = 2048


class Verdict(StrEnum):
    VALID_V3 = "valid_v3"
    VALID_V2 = "valid_v2"
    UNSIGNED = "unsigned"  # no usable signature header at all
    FORGED = "forged"  # signed, but not by any token we hold


@dataclass(frozen=True)
class Credentials:
    """Tokens the receiver trusts: auth id -> token for each account, and the main token."""

    tokens: Mapping[str, str] = field(repr=False)
    main_token: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.main_token:
            raise ValueError("the main account's auth token is required")

    def __repr__(self) -> str:
        return f"Credentials(accounts={sorted(self.tokens)!r})"

    def account_tokens(self) -> list[str]:
        tokens = [t for t in self.tokens.values() if t]
        return tokens or [self.main_token]


def _any_v3(
    method: str,
    url: str,
    params: Mapping[str, list[str]],
    nonce: str,
    tokens: list[str],
    header: str,
) -> bool:
    ok = False
    for token in tokens:
        ok |= verify_v3(method, url, params, nonce, token, header)
    return ok


def check_signature(
    method: str,
    public_url: str,
    params: Mapping[str, list[str]],
    headers: Mapping[str, str],
    credentials: Credentials,
    allow_v2: bool = False,
) -> Verdict:
    """Verdict for one request; `params` are the decoded form (POST) or query (GET) fields."""
    get = {k: headers.get(k, "")[:MAX_HEADER_CHARS] for k in (V3, MA_V3, V3_NONCE)}
    if get[V3] or get[MA_V3]:
        if not get[V3_NONCE]:
            return Verdict.FORGED
        owner = _any_v3(
            method, public_url, params, get[V3_NONCE], credentials.account_tokens(), get[V3]
        )
        main = _any_v3(
            method, public_url, params, get[V3_NONCE], [credentials.main_token], get[MA_V3]
        )
        return Verdict.VALID_V3 if owner | main else Verdict.FORGED
    v2 = {k: headers.get(k, "")[:MAX_HEADER_CHARS] for k in (V2, MA_V2, V2_NONCE)}
    if not allow_v2 or not (v2[V2] or v2[MA_V2]):
        return Verdict.UNSIGNED
    if not v2[V2_NONCE]:
        return Verdict.FORGED
    ok = False
    for token in credentials.account_tokens():
        ok |= verify_v2(public_url, v2[V2_NONCE], token, v2[V2])
    ok |= verify_v2(public_url, v2[V2_NONCE], credentials.main_token, v2[MA_V2])
    return Verdict.VALID_V2 if ok else Verdict.FORGED
