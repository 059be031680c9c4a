"""Status -> exception mapping, error-body parsing, and pickling of every client exception."""

from __future__ import annotations

import pickle

import pytest

from callerid.plivo import errors as e

PATH = "/v1/Account/MAXXXXXXXXXXXXXXXXXX/VerifiedCallerId/"
VERIFY_PATH = PATH + "Verification/uuid-1/"


@pytest.mark.parametrize(
    ("status", "message", "path", "expected"),
    [
        (429, "too many requests", PATH, e.RateLimitedError),
        (401, "authentication failed", PATH, e.AuthenticationError),
        (403, None, PATH, e.AuthenticationError),
        (404, "not found", PATH + "14155550123/", e.NotFoundError),
        (404, "verification not found", VERIFY_PATH, e.VerificationNotFoundError),
        (404, None, VERIFY_PATH, e.VerificationNotFoundError),
        (400, "invalid otp", VERIFY_PATH, e.InvalidOtpError),
        (400, "Invalid OTP", VERIFY_PATH, e.InvalidOtpError),
        (400, "maximum otp attempts exceeded", VERIFY_PATH, e.OtpAttemptsExceededError),
        (400, "verification expired", VERIFY_PATH, e.VerificationExpiredError),
        (400, "phone number is already verified", PATH, e.AlreadyVerifiedError),
        (409, "phone number is already verified", PATH, e.AlreadyVerifiedError),
        (400, "invalid phone number", PATH, e.RequestRejectedError),
        (405, "method not allowed", PATH, e.RequestRejectedError),
        (422, None, PATH, e.RequestRejectedError),
        (500, "boom", PATH, e.ServerError),
        (503, None, PATH, e.ServerError),
        (302, None, PATH, e.UnexpectedResponseError),
    ],
)
def test_error_for_status_picks_one_class(
    status: int, message: str | None, path: str, expected: type[e.PlivoError]
) -> None:
    err = e.error_for_status(status, message, method="POST", path=path)
    assert type(err) is expected
    assert err.status_code == status
    assert err.api_message == message
    assert str(status) in str(err)
    if message:
        assert message in str(err)


def test_specific_rejections_are_request_rejected_and_not_found_family() -> None:
    assert issubclass(e.InvalidOtpError, e.RequestRejectedError)
    assert issubclass(e.VerificationNotFoundError, e.NotFoundError)
    for cls in (e.OutcomeUnknownError, e.PlivoTimeoutError, e.PlivoConnectionError):
        assert issubclass(cls, e.PlivoError)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"api_id": "x", "error": "invalid otp"}', "invalid otp"),
        (b'{"api_id": "x", "error": {"error": "nested text"}}', "nested text"),
        (b'{"error": {"message": "object with message"}}', "object with message"),
        (b'{"error": {"code": 17}}', '{"code": 17}'),
        (b'{"error": ""}', None),
        (b'{"api_id": "x"}', '{"api_id": "x"}'),
        (b"<html>502 Bad Gateway</html>", "<html>502 Bad Gateway</html>"),
        (b"", None),
        (b'{"error": "your code 482193 is wrong"}', "your code **** is wrong"),
        (b"x" * 500, "x" * 200),
    ],
)
def test_api_error_message_copes_with_any_body(body: bytes, expected: str | None) -> None:
    assert e.api_error_message(body) == expected


ALL_ERRORS = [
    cls for cls in vars(e).values() if isinstance(cls, type) and issubclass(cls, e.PlivoError)
]


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
def test_every_exception_pickles_with_its_values(cls: type[e.PlivoError]) -> None:
    err = cls(
        "POST /x -> HTTP 400: invalid otp",
        status_code=400,
        api_message="invalid otp",
        method="POST",
        path="/x",
        phone_number="+14155550123",
        retry_after=2.5,
    )
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls
    assert str(back) == str(err)
    assert vars(back) == vars(err)
    assert back.args == err.args


def test_tree_is_drawn_in_the_module_docstring() -> None:
    doc = e.__doc__ or ""
    for cls in ALL_ERRORS:
        assert cls.__name__ in doc
