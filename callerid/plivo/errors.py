"""Every error the Plivo client raises, in one tree.

```
PlivoError                        base; plain values only, pickles (Prefect stores task exceptions)
├── RateLimitedError              429 after the retries ran out (or Retry-After too long to wait)
├── AuthenticationError           401/403, or no credentials configured
├── NotFoundError                 404: unknown phone number
│   └── VerificationNotFoundError 404 on complete: unknown or superseded verification_uuid
├── RequestRejectedError          other 4xx; `api_message` keeps the API's own words
│   ├── InvalidOtpError           "invalid otp": the verification stays open
│   ├── OtpAttemptsExceededError  "maximum otp attempts exceeded": locked
│   ├── VerificationExpiredError  "verification expired": the 15-minute window has passed
│   └── AlreadyVerifiedError      "phone number is already verified"
├── ServerError                   5xx after the retries ran out
├── PlivoConnectionError          could not connect, or a repeatable request got no answer
├── PlivoTimeoutError             no answer in time on a request that is safe to repeat
├── OutcomeUnknownError           an initiate may have reached Plivo but no usable answer came
├── NotSentError                  not sent: its send deadline passed before it could go out
└── UnexpectedResponseError       a 2xx whose body is not what the API documents
```

HTTP status -> class happens in exactly one place: `error_for_status`. Messages are built from
plain values; API text is passed through `mask_secrets_in_text` (the client's own token and Basic
auth value, which a careless server may echo) and `mask_codes_in_text`, so neither the token nor an
OTP echoed by a server ends up in an exception.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from callerid.masking import mask_codes_in_text

_MAX_BODY_CHARS = 200
_MIN_SECRET_CHARS = 4


def _restore(cls: type[PlivoError], message: str, state: dict[str, Any]) -> PlivoError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class PlivoError(Exception):
    """Base of every client error. Attributes are plain values (str/int/float/None)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        api_message: str | None = None,
        method: str | None = None,
        path: str | None = None,
        phone_number: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.api_message = api_message
        self.method = method
        self.path = path
        self.phone_number = phone_number
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only __init__ arguments defeat the default Exception pickling.
        return (_restore, (type(self), self.message, dict(self.__dict__)))

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status_code={self.status_code!r})"


class RateLimitedError(PlivoError):
    pass


class AuthenticationError(PlivoError):
    pass


class NotFoundError(PlivoError):
    pass


class VerificationNotFoundError(NotFoundError):
    pass


class RequestRejectedError(PlivoError):
    pass


class InvalidOtpError(RequestRejectedError):
    pass


class OtpAttemptsExceededError(RequestRejectedError):
    pass


class VerificationExpiredError(RequestRejectedError):
    pass


class AlreadyVerifiedError(RequestRejectedError):
    pass


class ServerError(PlivoError):
    pass


class PlivoConnectionError(PlivoError):
    pass


class PlivoTimeoutError(PlivoError):
    pass


class OutcomeUnknownError(PlivoError):
    """The initiate for `phone_number` may have sent an OTP; do not re-POST it blindly.

    Resolve it instead: GET the number (listed means verified), and do not initiate again until
    an OTP sent now would have expired (15 minutes).
    """


class NotSentError(PlivoError):
    """The request was never put on the wire: its `send_by` deadline passed while it waited for
    the rate limiter, a free connection or a retry. Nothing reached Plivo; not retried."""


class UnexpectedResponseError(PlivoError):
    pass


# API texts (plivo-api.md §0) that name a specific condition; matched case-insensitively.
_REJECTION_TEXTS: tuple[tuple[str, type[RequestRejectedError]], ...] = (
    ("maximum otp attempts", OtpAttemptsExceededError),
    ("invalid otp", InvalidOtpError),
    ("expired", VerificationExpiredError),
    ("already verified", AlreadyVerifiedError),
)


def mask_secrets_in_text(text: str, secrets: Iterable[str]) -> str:
    """Replace each secret in `text` with `****`. Secrets under 4 characters are left alone:
    masking them would garble the text without hiding anything worth hiding."""
    for secret in sorted(
        (s for s in secrets if len(s) >= _MIN_SECRET_CHARS), key=len, reverse=True
    ):
        text = text.replace(secret, "****")
    return text


def _clean_text(text: str, secrets: Iterable[str]) -> str:
    # Secrets go before the cut: a token cut in half by it would no longer match.
    return mask_codes_in_text(mask_secrets_in_text(text, secrets)[:_MAX_BODY_CHARS])


def api_error_message(body: bytes, secrets: Iterable[str] = ()) -> str | None:
    """The API's `error` text from a response body: a string, a nested object or not JSON at all.

    Every one of `secrets` (the client's token and Basic auth value) is masked in it."""
    if not body:
        return None
    secrets = tuple(secrets)
    try:
        data: Any = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", errors="replace").strip()
        return _clean_text(text, secrets) or None
    for _ in range(3):  # Ruby's SDK unwraps {"error": {"error": "..."}}; go a little deeper.
        if isinstance(data, dict) and "error" in data:
            data = data["error"]
        elif isinstance(data, dict) and isinstance(data.get("message"), str):
            data = data["message"]
        else:
            break
    if data is None or data == "":
        return None
    text = data if isinstance(data, str) else json.dumps(data, sort_keys=True)
    return _clean_text(text, secrets)


def error_for_status(
    status_code: int,
    api_message: str | None,
    *,
    method: str,
    path: str,
    phone_number: str | None = None,
    retry_after: float | None = None,
) -> PlivoError:
    """The one place where an HTTP error status becomes an exception class."""
    text = (api_message or "").lower()
    cls: type[PlivoError]
    if status_code == 429:
        cls = RateLimitedError
    elif status_code in (401, 403):
        cls = AuthenticationError
    elif status_code == 404:
        is_verification = "/Verification/" in path or "verification" in text
        cls = VerificationNotFoundError if is_verification else NotFoundError
    elif 400 <= status_code < 500:
        cls = next((c for key, c in _REJECTION_TEXTS if key in text), RequestRejectedError)
    elif status_code >= 500:
        cls = ServerError
    else:
        cls = UnexpectedResponseError
    detail = f": {api_message}" if api_message else ""
    return cls(
        f"{method} {path} -> HTTP {status_code}{detail}",
        status_code=status_code,
        api_message=api_message,
        method=method,
        path=path,
        phone_number=phone_number,
        retry_after=retry_after,
    )
