"""The state machine of a number: which moves are allowed, and what a move does besides `status`.

    queued ──initiate──▶ initiating ──sent──▶ initiated ──code claimed──▶ completing ──▶ verified
      │                     │  ▲                 │                            │ wrong code /
      │                     │  └ not sent        │                            │ try again:
      │                     │    (back to queued)│                            ▼ initiated
      │                     ├── rejected ──▶ failed                    window over or locked:
      │                     └── window over, outcome unknown ─┐             expired
      │                                                       ▼               │
      └── listed by the account ──▶ already_verified       expired ──attempts left──▶ queued
                                                                 └──none left──▶ failed

Rules besides the table (all applied in `apply_transition`, the one place that changes a status):

* An attempt is counted when a number leaves `initiating` for `initiated` or `expired`, i.e. when
  an OTP was, or may have been, sent. `initiating → queued` ("not sent") counts nothing.
  `expired` then goes to `queued` while `attempts < max_attempts`, else to `failed`.
* Listing is the truth: a number the account lists may become `verified` / `already_verified`
  from any other state, including `failed`.
* A final number (verified, already_verified, failed) may go back to `queued` (reconcile found it
  missing from the account, or a person asked for a retry): that starts it afresh, so `attempts`,
  `wrong_otps`, `last_error` and the verification fields are reset.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from callerid.ledger.models import FINAL_STATUSES, NumberStatus

# How long an OTP stays valid after Plivo accepts an initiate (plivo-api.md, design.md).
OTP_WINDOW: Final = timedelta(minutes=15)

S = NumberStatus

ALLOWED: Final[dict[NumberStatus, frozenset[NumberStatus]]] = {
    S.QUEUED: frozenset({S.INITIATING, S.VERIFIED, S.ALREADY_VERIFIED}),
    S.INITIATING: frozenset(
        {S.INITIATED, S.QUEUED, S.EXPIRED, S.FAILED, S.VERIFIED, S.ALREADY_VERIFIED}
    ),
    S.INITIATED: frozenset({S.COMPLETING, S.EXPIRED, S.FAILED, S.VERIFIED}),
    S.COMPLETING: frozenset({S.INITIATED, S.VERIFIED, S.EXPIRED, S.FAILED}),
    S.EXPIRED: frozenset({S.QUEUED, S.FAILED, S.VERIFIED, S.ALREADY_VERIFIED}),
    S.VERIFIED: frozenset({S.QUEUED}),
    S.ALREADY_VERIFIED: frozenset({S.QUEUED}),
    S.FAILED: frozenset({S.QUEUED, S.VERIFIED, S.ALREADY_VERIFIED}),
}

# Leaving `initiating` for one of these means an OTP was or may have been sent.
_COUNTS_AN_ATTEMPT: Final = frozenset({S.INITIATED, S.EXPIRED})

# Columns a transition (or a touch) may set besides the status and bookkeeping.
MUTABLE_FIELDS: Final = frozenset(
    {
        "alias",
        "subaccount",
        "country",
        "channel",
        "verification_uuid",
        "initiated_at",
        "expires_at",
        "attempts",
        "wrong_otps",
        "last_error",
    }
)


def is_allowed(from_status: str, to_status: str) -> bool:
    return NumberStatus(to_status) in ALLOWED[NumberStatus(from_status)]


def check_fields(fields: dict[str, object]) -> None:
    unknown = sorted(set(fields) - MUTABLE_FIELDS)
    if unknown:
        raise TypeError(
            f"cannot set {', '.join(unknown)} on a number (allowed: "
            f"{', '.join(sorted(MUTABLE_FIELDS))})"
        )


def side_effects(
    from_status: NumberStatus, to_status: NumberStatus, attempts: int
) -> dict[str, object]:
    """Column changes a move implies (the caller's explicit fields win over these)."""
    changes: dict[str, object] = {}
    if from_status is S.INITIATING and to_status in _COUNTS_AN_ATTEMPT:
        changes["attempts"] = attempts + 1
    if from_status in FINAL_STATUSES and to_status is S.QUEUED:
        changes.update(
            attempts=0,
            wrong_otps=0,
            last_error=None,
            verification_uuid=None,
            initiated_at=None,
            expires_at=None,
        )
    return changes


def after_expiry(attempts: int, max_attempts: int) -> NumberStatus:
    """Where an expired number goes: back to the queue while attempts are left."""
    return S.QUEUED if attempts < max_attempts else S.FAILED
