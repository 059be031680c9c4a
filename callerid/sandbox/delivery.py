"""How one simulated SMS reaches the inbox: a signed Plivo webhook, or a file in a drop folder."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode

from callerid.plivo.signature import sign_v3
from callerid.sandbox.models import SentOtp, format_timestamp
from callerid.sandbox.poster import Answer


@dataclass(frozen=True)
class OutboundSms:
    sent: SentOtp
    text: str = field(repr=False)  # carries the code
    to_number: str
    message_uuid: str
    nonce: str

    def webhook_params(self) -> dict[str, str]:
        """Plivo's inbound-SMS form (plivo-api.md §4.1); numbers as bare digits, as Plivo sends."""
        return {
            "From": self.sent.phone_number.lstrip("+"),
            "To": self.to_number.lstrip("+"),
            "Text": self.text,
            "Type": "sms",
            "MessageUUID": self.message_uuid,
            "Units": "1",
            "TotalRate": "0.00000",
            "TotalAmount": "0.00000",
            "MessageIntent": "",
            "PowerpackUUID": "",
        }


@dataclass(frozen=True)
class Delivery:
    """The outcome of one delivery attempt (no text: it holds a code)."""

    phone_number: str
    verification_uuid: str
    message_uuid: str
    target: str  # the inbox URL or the file written
    ok: bool
    status_code: int | None
    error: str | None
    delivered_at: datetime

    def to_json(self) -> dict[str, object]:
        return {
            "phone_number": self.phone_number,
            "verification_uuid": self.verification_uuid,
            "message_uuid": self.message_uuid,
            "target": self.target,
            "ok": self.ok,
            "status_code": self.status_code,
            "error": self.error,
            "delivered_at": format_timestamp(self.delivered_at),
        }


def _record(
    sms: OutboundSms, target: str, ok: bool, status: int | None, error: str | None, at: datetime
) -> Delivery:
    return Delivery(
        phone_number=sms.sent.phone_number,
        verification_uuid=sms.sent.verification_uuid,
        message_uuid=sms.message_uuid,
        target=target,
        ok=ok,
        status_code=status,
        error=error,
        delivered_at=at,
    )


def signed_headers(
    url: str, params: dict[str, str], nonce: str, owner_token: str, main_token: str
) -> dict[str, str]:
    return {
        "X-Plivo-Signature-V3": sign_v3("POST", url, params, nonce, owner_token),
        "X-Plivo-Signature-Ma-V3": sign_v3("POST", url, params, nonce, main_token),
        "X-Plivo-Signature-V3-Nonce": nonce,
        "User-Agent": "PlivoHTTP/sandbox",
    }


def webhook_request(
    url: str, sms: OutboundSms, owner_token: str, main_token: str
) -> tuple[bytes, dict[str, str]]:
    """The signed form POST of one SMS: (body, headers), for `poster.WebhookPoster`."""
    params = sms.webhook_params()
    headers = signed_headers(url, params, sms.nonce, owner_token, main_token)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    return urlencode(params).encode(), headers


def webhook_delivery(
    url: str, sms: OutboundSms, answer: Answer, delivered_at: datetime
) -> Delivery:
    """The record of one webhook POST; `delivered_at` is on the sandbox clock (files use it too)."""
    return _record(sms, url, answer.ok, answer.status, answer.error, delivered_at)


def send_to_drop_dir(folder: Path, sms: OutboundSms, received_at: datetime) -> Delivery:
    """One file per message, written under a temporary name and renamed: readers never see half."""
    line = {
        "from": sms.sent.phone_number,
        "to": sms.to_number,
        "text": sms.text,
        "received_at": format_timestamp(received_at),
        "message_uuid": sms.message_uuid,
    }
    target = folder / f"sandbox-sms-{sms.message_uuid}.jsonl"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".sandbox-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")
        os.replace(tmp, target)
    except OSError as exc:
        return _record(sms, str(target), False, None, f"{type(exc).__name__}: {exc}", received_at)
    return _record(sms, str(target), True, None, None, received_at)
