"""`Outcome`: what one API call means for one number's row. Made by `steps`, written by
`ledger_ops`; it lives here so that neither of those modules imports the other for it."""

from __future__ import annotations

from dataclasses import dataclass

from callerid.ledger.models import NumberStatus


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one API call means for one number's row."""

    e164: str
    status: NumberStatus
    reason: str
    verification_uuid: str | None = None
    wrong_otp: bool = False
    message_used: bool = True
