"""Signed links to the code page, and the page's CSRF tokens.

A link token names the account, the owner, the numbers and an expiry, and is signed with
HMAC-SHA256 under the ledger's link key:

    <base64url(zlib(json payload))>.<base64url(hmac)>

Nothing in it is secret (it is a bearer credential: whoever holds the link may type codes for
its numbers until it expires); nothing in it can be changed without the key. `verify` refuses a
forged, altered, malformed or expired token with `LinkRefusedError`, whose reason is safe to log.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import secrets
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime

MAX_TOKEN_CHARS = 16_000  # a few hundred numbers; anything longer is not ours
_VERSION = 1


class LinkRefusedError(Exception):
    """The link cannot be used: forged, altered, malformed or expired (a plain reason)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.reason,))


@dataclass(frozen=True, slots=True)
class Link:
    """What a link grants: codes for `numbers` of `account`, by `owner`, until `expires_at`."""

    account: str
    owner: str
    numbers: tuple[str, ...]
    expires_at: datetime

    def names(self, e164: str) -> bool:
        return e164 in self.numbers


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, purpose: str, data: bytes) -> bytes:
    return hmac.new(key, purpose.encode() + b"\0" + data, hashlib.sha256).digest()


def sign(key: bytes, link: Link) -> str:
    payload = {
        "v": _VERSION,
        "a": link.account,
        "o": link.owner,
        "n": list(link.numbers),
        "x": math.ceil(link.expires_at.timestamp()),  # never earlier than asked
    }
    body = zlib.compress(json.dumps(payload, separators=(",", ":")).encode(), 9)
    return f"{_b64(body)}.{_b64(_mac(key, 'link', body))}"


def _payload(key: bytes, token: str) -> dict[str, object]:
    if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        raise LinkRefusedError("malformed link")
    body_text, mac_text = token.split(".")
    try:
        body, mac = _unb64(body_text), _unb64(mac_text)
    except (binascii.Error, ValueError):
        raise LinkRefusedError("malformed link") from None
    if _b64(body) != body_text or _b64(mac) != mac_text:  # one spelling per link, no variants
        raise LinkRefusedError("malformed link")
    if not hmac.compare_digest(mac, _mac(key, "link", body)):
        raise LinkRefusedError("link signature does not match")
    try:  # signed by us, so well-formed unless the key leaked; checked all the same
        payload = json.loads(zlib.decompress(body))
    except (zlib.error, ValueError):
        raise LinkRefusedError("malformed link") from None
    if not isinstance(payload, dict) or payload.get("v") != _VERSION:
        raise LinkRefusedError("unknown link version")
    return payload


def verify(key: bytes, token: str, now: datetime) -> Link:
    """The link `token` grants, or `LinkRefusedError`."""
    payload = _payload(key, token)
    try:
        account, owner, numbers = str(payload["a"]), str(payload["o"]), payload["n"]
        expires_at = datetime.fromtimestamp(int(str(payload["x"])), UTC)
    except (KeyError, ValueError, OverflowError):
        raise LinkRefusedError("malformed link") from None
    if not isinstance(numbers, list) or not all(isinstance(n, str) for n in numbers):
        raise LinkRefusedError("malformed link")
    if now >= expires_at:
        raise LinkRefusedError("link expired")
    return Link(account, owner, tuple(numbers), expires_at)


def link_id(token: str) -> str:
    """A short stable name for a token (counters and the audit trail key on it)."""
    return hashlib.sha256(token.encode()).hexdigest()[:24]


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def csrf_token(key: bytes, link: str, nonce: str) -> str:
    """The hidden form field: bound to this link and to the nonce the page's cookie carries."""
    return _b64(_mac(key, "csrf", f"{link_id(link)}:{nonce}".encode()))


def csrf_ok(key: bytes, link: str, nonce: str | None, token: str | None) -> bool:
    if not nonce or not token or len(token) > 100 or len(nonce) > 100:
        return False
    return hmac.compare_digest(token.encode(), csrf_token(key, link, nonce).encode())


def generate_key() -> str:
    return secrets.token_urlsafe(48)
