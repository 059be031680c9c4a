"""Masking for secrets and OTP codes: they never reach logs, reprs, exceptions or reports."""

from __future__ import annotations

import re

_OTP_RE = re.compile(r"(?<!\d)\d{4,8}(?!\d)")


def mask_secret(value: str | None) -> str:
    """`abcd...` -> `ab****`: enough to tell two tokens apart, never enough to use one."""
    if not value:
        return ""
    return value[:2] + "****"


def mask_otp(code: str | None) -> str:
    return "****" if code else ""


def mask_codes_in_text(text: str) -> str:
    """Replace every 4-8 digit group that stands alone (a possible OTP) with `****`."""
    return _OTP_RE.sub("****", text)
