"""Errors the sandbox backend raises; the app turns each into `{"api_id", "error"}` with its status.

```
SandboxError(status, message)
├── BadRequestError        400  (wrong/expired OTP, invalid number, bad limit, ...)
├── UnauthorizedError      401  (Basic auth missing or not matching the path's auth id)
├── NotFoundError          404  (unknown number or verification)
└── TooManyRequestsError   429  (more than N requests in the rolling window)
```
They hold plain values only, so they pickle, and never carry a token or an OTP.
"""

from __future__ import annotations


class SandboxError(Exception):
    status: int = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def __reduce__(self) -> tuple[type[SandboxError], tuple[str, int]]:
        return (type(self), (self.message, self.status))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, message={self.message!r})"


class BadRequestError(SandboxError):
    status = 400


class UnauthorizedError(SandboxError):
    status = 401


class NotFoundError(SandboxError):
    status = 404


class TooManyRequestsError(SandboxError):
    status = 429
