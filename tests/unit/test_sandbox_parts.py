"""Small sandbox parts: timestamps, numbers, the rolling window, the fault queue, webhook form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from callerid.plivo.signature import verify_v3
from callerid.sandbox.delivery import OutboundSms, signed_headers
from callerid.sandbox.faults import Fault, FaultKind, FaultQueue, Operation
from callerid.sandbox.models import Channel, SentOtp, format_timestamp
from callerid.sandbox.numbers import country_of, parse_number
from callerid.sandbox.ratelimit import RollingWindowLimiter

MOMENT = datetime(2023, 9, 25, 14, 40, 38, 687290, tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "extra_ns", "text"),
    [
        (MOMENT, None, "2023-09-25T14:40:38.68729Z"),  # Go RFC3339Nano trims zeros
        (MOMENT, 341, "2023-09-25T14:40:38.687290341Z"),
        (MOMENT, 0, "2023-09-25T14:40:38.687290000Z"),
        (MOMENT.replace(microsecond=0), None, "2023-09-25T14:40:38Z"),
    ],
)
def test_timestamps_look_like_plivos(moment: datetime, extra_ns: int | None, text: str) -> None:
    assert format_timestamp(moment, extra_ns) == text
    assert datetime.fromisoformat(text) == moment


@pytest.mark.parametrize(
    ("raw", "e164", "country"),
    [
        ("+14155551234", "+14155551234", "US"),
        ("14155551234", "+14155551234", "US"),
        ("%2B919768368717", "+919768368717", "IN"),
        (" 14155551234", "+14155551234", "US"),  # a "+" that a query string turned into a space
        ("+1 415 555 1234", None, None),
        ("+1234", None, None),
        ("", None, None),
    ],
)
def test_numbers_parse_with_or_without_plus(
    raw: str, e164: str | None, country: str | None
) -> None:
    assert parse_number(raw) == e164
    if e164:
        assert country_of(e164) == country


def test_rolling_window_counts_only_admitted_requests() -> None:
    limiter = RollingWindowLimiter(2, 1.0)
    t0 = MOMENT
    assert limiter.admit("a", t0) and limiter.admit("a", t0)
    assert not limiter.admit("a", t0 + timedelta(seconds=0.5))
    assert limiter.admit("b", t0)
    assert limiter.admit("a", t0 + timedelta(seconds=1))
    with pytest.raises(ValueError):
        RollingWindowLimiter(0, 1.0)


def test_fault_queue_takes_matching_faults_count_times() -> None:
    queue = FaultQueue()
    queue.add(Fault(FaultKind.STATUS, count=2, status=503, operation=Operation.INITIATE))
    queue.add(Fault(FaultKind.LATENCY, latency_ms=10))
    assert queue.take(Operation.LIST) == Fault(FaultKind.LATENCY, latency_ms=10)
    assert queue.take(Operation.LIST) is None
    taken = [queue.take(Operation.INITIATE) for _ in range(3)]
    assert [f.status if f else None for f in taken] == [503, 503, None]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"kind": "explode"}, "kind must be one of"),
        ({"kind": "status", "status": 200}, "status must be an HTTP error status"),
        ({"kind": "drop", "count": 0}, "count must be at least 1"),
        ({"kind": "drop", "operation": "nope"}, "bad fault"),
        ({"kind": "latency", "latency_ms": -1}, "must not be negative"),
    ],
)
def test_bad_faults_are_refused_clearly(body: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Fault.from_json(body)


def test_fault_json_round_trip() -> None:
    fault = Fault(FaultKind.TIMEOUT_AFTER_PROCESSING, delay_s=2.5, operation=Operation.INITIATE)
    assert Fault.from_json(fault.to_json()) == fault


def test_webhook_form_and_signatures_match_plivos_shape() -> None:
    sent = SentOtp(
        phone_number="+14155550123",
        channel=Channel.SMS,
        otp="4821",
        verification_uuid="v-1",
        account="MASANDBOXACCOUNT0001",
        sent_at=MOMENT,
        expires_at=MOMENT + timedelta(minutes=15),
    )
    sms = OutboundSms(sent, "Your verification code is 4821", "+15005550100", "m-1", "8462915")
    params = sms.webhook_params()
    assert (params["From"], params["To"], params["Type"]) == ("14155550123", "15005550100", "sms")
    assert params["MessageIntent"] == "" and params["PowerpackUUID"] == ""
    assert "4821" not in repr(sms)
    url = "https://hooks.example.com/plivo/sms/inbound/?tenant=acme"
    headers = signed_headers(url, params, "8462915", "owner-token", "main-token")
    assert verify_v3("POST", url, params, "8462915", "owner-token", headers["X-Plivo-Signature-V3"])
    assert verify_v3(
        "POST", url, params, "8462915", "main-token", headers["X-Plivo-Signature-Ma-V3"]
    )
    assert not verify_v3(
        "POST", url, params, "8462915", "main-token", headers["X-Plivo-Signature-V3"]
    )
