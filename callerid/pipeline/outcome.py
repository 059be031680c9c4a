"""`Outcome`: what one API call means for one number's row. Made by `steps`, written by
`ledger_ops`; it lives here so that neither of those modules imports the other for it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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
    # An initiate's own moments (pipeline clock): asked before the limiter's wait (no OTP can
    # predate it), answered when its answer came back (Plivo started the window before that).
    asked_at: datetime | None = None
    answered_at: datetime | None = None
