"""The client's one retry policy: what is retried, and how long to wait before the next attempt.

Retried: connection failures, 429 and 5xx. An operation is either *repeatable* (get, list, update,
delete, complete: sending it twice does no harm the client cannot sort out) or *send-once*
(initiate: every accepted POST sends an OTP). A send-once request is repeated only where the server
cannot have acted on it: the connection was never made, or the server answered 429 (the rate limit
turns a request away before it is processed). A 5xx is an answer from a server that may have
got as far as sending the SMS (retrying 5xx is how plivo-node#177 placed duplicate calls), so a
send-once request that meets a 5xx, a read timeout or a dropped connection is not repeated: the
client raises `OutcomeUnknownError` and the pipeline resolves it.

How long: a 429 is never the last word before `rate_limited_deadline_s` (default 5 minutes,
`CALLERID_RATE_LIMITED_DEADLINE_S`): it means "wait", so 429s do not count against
`max_attempts`, and the request is retried, each attempt paced by the account's limiter (which a
429 slows down), until the deadline would pass. Other failures count against `max_attempts`.

Waits: capped exponential backoff with "equal jitter" (half fixed, half random, so a crowd of
retries spreads out but none comes back instantly); a Retry-After header, if Plivo ever sends one,
is a floor. A wait that would end past the deadline ends the retries with the last error.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from callerid.plivo.errors import (
    PlivoConnectionError,
    PlivoTimeoutError,
    RateLimitedError,
    ServerError,
)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent
    or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5  # failures other than 429
    base_s: float = 0.5
    cap_s: float = 8.0
    rate_limited_deadline_s: float = 300.0  # 429s are retried until then (from the first try)
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.rate_limited_deadline_s < 0:
            raise ValueError("rate_limited_deadline_s must not be negative")

    def backoff_s(self, failures: int) -> float:
        """Wait after the `failures`-th failed attempt (1-based), before Retry-After."""
        ceiling = min(self.cap_s, self.base_s * 2.0 ** max(0, failures - 1))
        jitter: float = self.rng.random()
        return ceiling / 2 + jitter * ceiling / 2

    def wait_s(self, failures: int, error: BaseException | None) -> float:
        wait = self.backoff_s(failures)
        retry_after = getattr(error, "retry_after", None)
        if isinstance(retry_after, int | float):
            wait = max(wait, float(retry_after))
        return wait

    def should_retry(self, error: BaseException, *, repeatable: bool) -> bool:
        if isinstance(error, RateLimitedError):
            retry_after = error.retry_after
            return retry_after is None or retry_after <= self.rate_limited_deadline_s
        if isinstance(error, PlivoConnectionError):
            # The request never left (connect/pool failure), or a repeatable one was dropped after
            # sending (a send-once one raises OutcomeUnknownError instead): safe to repeat.
            return True
        if isinstance(error, ServerError | PlivoTimeoutError):
            return repeatable
        return False

    def retrying(
        self,
        *,
        repeatable: bool,
        before_sleep: Callable[[RetryCallState], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> AsyncRetrying:
        started = self.clock()
        failures = {"other": 0, "rate_limited": 0}

        def wait(state: RetryCallState) -> float:  # tenacity asks `wait`, then `stop`
            error = state.outcome.exception() if state.outcome else None
            # A run of 429s backs off on its own count, and 429s leave `max_attempts` alone.
            kind = "rate_limited" if isinstance(error, RateLimitedError) else "other"
            failures[kind] += 1
            return self.wait_s(failures[kind], error)

        def stop(state: RetryCallState) -> bool:
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, RateLimitedError):
                resumes_at = self.clock() - started + state.upcoming_sleep
                return resumes_at > self.rate_limited_deadline_s
            return failures["other"] >= self.max_attempts

        kwargs: dict[str, object] = {}
        if sleep is not None:
            kwargs["sleep"] = sleep
        return AsyncRetrying(
            stop=stop,
            wait=wait,
            retry=retry_if_exception(lambda e: self.should_retry(e, repeatable=repeatable)),
            before_sleep=before_sleep,
            reraise=True,
            **kwargs,  # type: ignore[arg-type]
        )
