"""The client's one retry policy: what is retried, and how long to wait before the next attempt.

Retried: connection failures, 429 and 5xx. An operation is either *repeatable* (get, list, update,
delete, complete: sending it twice does no harm the client cannot sort out) or *send-once*
(initiate: every accepted POST sends an OTP). A send-once request is repeated only where the server
cannot have acted on it: the connection was never made, or the server answered 429 (the rate limit
turns a request away before it is processed). A 5xx is an answer from a server that may have
got as far as sending the SMS (retrying 5xx is how plivo-node#177 placed duplicate calls), so a
send-once request that meets a 5xx, a read timeout or a dropped connection is not repeated: the
client raises `OutcomeUnknownError` and the pipeline resolves it.

Waits: capped exponential backoff with "equal jitter" (half fixed, half random, so a crowd of
retries spreads out but none comes back instantly); a Retry-After header, if Plivo ever sends one,
is a floor. A Retry-After longer than `max_retry_after_s` ends the retries with the
RateLimitedError.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

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
    max_attempts: int = 5
    base_s: float = 0.5
    cap_s: float = 8.0
    max_retry_after_s: float = 60.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

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
            return error.retry_after is None or error.retry_after <= self.max_retry_after_s
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
        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            return self.wait_s(state.attempt_number, error)

        kwargs: dict[str, object] = {}
        if sleep is not None:
            kwargs["sleep"] = sleep
        return AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait,
            retry=retry_if_exception(lambda e: self.should_retry(e, repeatable=repeatable)),
            before_sleep=before_sleep,
            reraise=True,
            **kwargs,  # type: ignore[arg-type]
        )
