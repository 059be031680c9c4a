"""The dry-run plan: what a run would do, and roughly how long the API calls alone would take."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from callerid.ledger.models import FINAL_STATUSES, NumberStatus
from callerid.pipeline.options import LIST_PAGE_SIZE

# Statuses whose verification may still be live: a rerun waits for them instead of initiating.
LIVE_STATUSES = frozenset(
    {NumberStatus.INITIATING, NumberStatus.INITIATED, NumberStatus.COMPLETING}
)


@dataclass(frozen=True, slots=True)
class Plan:
    accepted: int
    rejected: int
    already_verified: int  # listed by the account, or already final as verified in the ledger
    already_failed: int  # final as failed in the ledger: a rerun leaves them alone
    waiting: int  # live verifications from an earlier run: completed or expired, not re-sent
    to_initiate: int
    list_pages: int
    api_requests: int
    rate_per_s: float
    estimated_seconds: float
    # The numbers to initiate by channel (`sms`, `call`): what `--channel auto` chose.
    to_initiate_by_channel: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """The plan in words, for the CLI and the markdown artifact."""
        return [
            f"rows accepted: {self.accepted}, rejected: {self.rejected}",
            f"already verified: {self.already_verified}",
            f"failed in an earlier run (left alone): {self.already_failed}",
            f"live verifications from an earlier run (waited for): {self.waiting}",
            f"to initiate: {self.to_initiate}"
            + (
                f" ({self.to_initiate_by_channel.get('sms', 0)} by SMS, "
                f"{self.to_initiate_by_channel.get('call', 0)} by voice call)"
                if self.to_initiate_by_channel
                else ""
            ),
            f"API requests: about {self.api_requests} ({self.list_pages} list pages)",
            f"estimated duration at {self.rate_per_s:g} requests/s: "
            f"{format_seconds(self.estimated_seconds)} plus the time OTPs take to arrive",
        ]


def format_seconds(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 90:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def list_pages(count: int) -> int:
    """Pages the list endpoint needs for `count` caller IDs (an empty list still costs one)."""
    return max(1, math.ceil(count / LIST_PAGE_SIZE))


def build_plan(
    accepted_e164s: Iterable[str],
    rejected: int,
    listed_e164s: Iterable[str],
    ledger_statuses: Mapping[str, str],
    *,
    max_requests: int,
    period_s: float,
    channels: Mapping[str, str] | None = None,
) -> Plan:
    """Count what a run would do.

    `ledger_statuses` maps E.164 -> status for numbers this account's ledger already knows;
    `listed_e164s` are the caller IDs the account lists now; `channels` maps E.164 -> the
    channel the ingest chose, for the split of the numbers to initiate.
    """
    accepted = list(dict.fromkeys(accepted_e164s))
    listed = set(listed_e164s)
    already = failed = waiting = to_initiate = 0
    by_channel: dict[str, int] = {}
    for e164 in accepted:
        status = ledger_statuses.get(e164)
        if e164 in listed or status in (NumberStatus.VERIFIED, NumberStatus.ALREADY_VERIFIED):
            already += 1
        elif status in FINAL_STATUSES:
            failed += 1
        elif status in LIVE_STATUSES:
            waiting += 1
        else:
            to_initiate += 1
            if channels is not None:
                channel = channels.get(e164, "sms")
                by_channel[channel] = by_channel.get(channel, 0) + 1
    # One list before and one after the run (the second sees the new caller IDs too).
    pages = list_pages(len(listed)) + list_pages(len(listed) + to_initiate + waiting)
    requests = 2 * to_initiate + waiting + pages
    rate = max_requests / period_s
    return Plan(
        accepted=len(accepted),
        rejected=rejected,
        already_verified=already,
        already_failed=failed,
        waiting=waiting,
        to_initiate=to_initiate,
        list_pages=pages,
        api_requests=requests,
        rate_per_s=rate,
        estimated_seconds=requests / rate,
        to_initiate_by_channel=by_channel,
    )
