"""Plivo Verified Caller ID: the async client, its errors, pacing, retry policy and result types."""

from __future__ import annotations

from callerid.plivo.client import PAGE_SIZE, PlivoClient
from callerid.plivo.errors import (
    AlreadyVerifiedError,
    AuthenticationError,
    InvalidOtpError,
    NotFoundError,
    NotSentError,
    OtpAttemptsExceededError,
    OutcomeUnknownError,
    PlivoConnectionError,
    PlivoError,
    PlivoTimeoutError,
    RateLimitedError,
    RequestRejectedError,
    ServerError,
    UnexpectedResponseError,
    VerificationExpiredError,
    VerificationNotFoundError,
    error_for_status,
)
from callerid.plivo.limiter import Priority, RateLimiter, SlotSource, limiter_for
from callerid.plivo.models import CallerId, Channel, Initiation, Page, parse_timestamp
from callerid.plivo.pacing import PacingWindow
from callerid.plivo.retry import RetryPolicy, parse_retry_after

__all__ = [
    "PAGE_SIZE",
    "AlreadyVerifiedError",
    "AuthenticationError",
    "CallerId",
    "Channel",
    "Initiation",
    "InvalidOtpError",
    "NotFoundError",
    "NotSentError",
    "OtpAttemptsExceededError",
    "OutcomeUnknownError",
    "PacingWindow",
    "Page",
    "PlivoClient",
    "PlivoConnectionError",
    "PlivoError",
    "PlivoTimeoutError",
    "Priority",
    "RateLimitedError",
    "RateLimiter",
    "RequestRejectedError",
    "RetryPolicy",
    "ServerError",
    "SlotSource",
    "UnexpectedResponseError",
    "VerificationExpiredError",
    "VerificationNotFoundError",
    "error_for_status",
    "limiter_for",
    "parse_retry_after",
    "parse_timestamp",
]
