"""Retry waits (table-driven, randomness pinned) and which failures are retried."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from callerid.plivo import errors as e
from callerid.plivo.retry import RetryPolicy, parse_retry_after


class FixedRandom(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.mark.parametrize(
    ("failures", "jitter", "expected"),
    [
        (1, 0.0, 0.25),  # base 0.5: half fixed ...
        (1, 1.0, 0.5),  # ... half random
        (2, 0.0, 0.5),
        (2, 0.5, 0.75),
        (3, 1.0, 2.0),
        (4, 0.0, 2.0),
        (5, 1.0, 8.0),  # capped at 8
        (9, 0.0, 4.0),
        (9, 1.0, 8.0),
    ],
)
def test_backoff_is_capped_exponential_with_jitter(
    failures: int, jitter: float, expected: float
) -> None:
    policy = RetryPolicy(base_s=0.5, cap_s=8.0, rng=FixedRandom(jitter))
    assert policy.backoff_s(failures) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("retry_after", "failures", "expected"),
    [
        (None, 1, 0.5),
        (3.0, 1, 3.0),  # Retry-After is a floor ...
        (0.1, 3, 2.0),  # ... not a ceiling
        (0.0, 1, 0.5),
    ],
)
def test_retry_after_is_honoured(retry_after: float | None, failures: int, expected: float) -> None:
    policy = RetryPolicy(base_s=0.5, cap_s=8.0, rng=FixedRandom(1.0))
    err = e.RateLimitedError("429", status_code=429, retry_after=retry_after)
    assert policy.wait_s(failures, err) == pytest.approx(expected)


def _err(cls: type[e.PlivoError], retry_after: float | None = None) -> e.PlivoError:
    return cls("x", retry_after=retry_after)


@pytest.mark.parametrize(
    ("error", "repeatable", "retried"),
    [
        (_err(e.RateLimitedError), False, True),  # 429: turned away before processing
        (_err(e.RateLimitedError, retry_after=30), False, True),
        (_err(e.RateLimitedError, retry_after=3600), True, False),  # too long to wait here
        (_err(e.PlivoConnectionError), False, True),  # never sent
        (_err(e.ServerError), True, True),
        (_err(e.ServerError), False, False),  # send-once: a 5xx may have sent the OTP
        (_err(e.PlivoTimeoutError), True, True),
        (_err(e.PlivoTimeoutError), False, False),
        (_err(e.OutcomeUnknownError), False, False),
        (_err(e.NotFoundError), True, False),
        (_err(e.InvalidOtpError), True, False),
        (_err(e.AuthenticationError), True, False),
        (ValueError("bug"), True, False),
    ],
)
def test_what_is_retried(error: BaseException, repeatable: bool, retried: bool) -> None:
    assert RetryPolicy().should_retry(error, repeatable=repeatable) is retried


NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("Thu, 01 Jan 2026 12:00:30 GMT", 30.0),
        ("Thu, 01 Jan 2026 11:59:00 GMT", 0.0),
        ("soon", None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected


def test_max_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
