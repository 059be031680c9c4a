"""The sandbox backend's rules (plivo-api.md §0), on a ManualClock, without any I/O."""

from __future__ import annotations

import pickle
from datetime import datetime
from typing import Any

import pytest

from callerid.clock import ManualClock, OffsetClock
from callerid.sandbox.backend import (
    DEFAULT_AUTH_ID as MAIN,
)
from callerid.sandbox.backend import (
    DEFAULT_AUTH_TOKEN,
    SandboxBackend,
)
from callerid.sandbox.errors import (
    BadRequestError,
    NotFoundError,
    SandboxError,
    TooManyRequestsError,
    UnauthorizedError,
)
from callerid.sandbox.models import SentOtp
from callerid.sandbox.state import DEFAULT_SUBACCOUNTS

SUB1, SUB2 = "SASANDBOXSUBACCT0001", "SASANDBOXSUBACCT0002"
NUMBER = "+14155551234"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def backend(clock: ManualClock) -> SandboxBackend:
    return SandboxBackend(clock=clock, seed=7, subaccounts=DEFAULT_SUBACCOUNTS)


def start(backend: SandboxBackend, number: str = NUMBER, **kw: str) -> tuple[str, str]:
    uuid = backend.initiate(kw.pop("account", MAIN), number, **kw).verification_uuid
    return uuid, backend.otp_for(uuid)


def expect(exc: type[SandboxError], message: str) -> Any:
    return pytest.raises(exc, match=f"^{message}$")


def test_initiate_answers_plivos_message_and_sends_a_4_digit_otp(backend: SandboxBackend) -> None:
    started = backend.initiate(MAIN, "14155551234", alias="desk")
    assert started.message == (
        "Verification code is sent to number +14155551234 which is valid for 15 minutes"
    )
    [sent] = backend.messages(NUMBER)
    assert sent.verification_uuid == started.verification_uuid
    assert len(sent.otp) == 4 and sent.otp.isdigit()
    assert sent.otp not in repr(sent)


def test_otp_length_is_configurable() -> None:
    backend = SandboxBackend(clock=ManualClock(), otp_digits=6)
    assert len(start(backend)[1]) == 6
    with pytest.raises(ValueError):
        SandboxBackend(otp_digits=3)


def test_right_otp_lists_the_number_with_its_country(backend: SandboxBackend) -> None:
    uuid, otp = start(backend, alias="desk", channel="Call")
    caller = backend.complete(MAIN, uuid, otp)
    assert (caller.phone_number, caller.alias, caller.country, caller.channel) == (
        NUMBER,
        "desk",
        "US",
        "call",
    )
    assert caller.verification_uuid == uuid and caller.subaccount == ""
    assert backend.get(MAIN, "14155551234") == caller
    body = caller.completed_json()
    assert body["created_at"].endswith("Z") and len(body["created_at"].split(".")[1]) == 10
    assert datetime.fromisoformat(body["created_at"]) == caller.created_at


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (None, "phone_number is required"),
        ("", "phone_number is required"),
        ("+1234", "invalid phone number"),
        ("+15551234567", "invalid phone number"),
        ("not a number", "invalid phone number"),
    ],
)
def test_initiate_refuses_missing_and_invalid_numbers(
    backend: SandboxBackend, raw: str | None, message: str
) -> None:
    with expect(BadRequestError, message):
        backend.initiate(MAIN, raw)


def test_initiate_refuses_an_unknown_channel(backend: SandboxBackend) -> None:
    with expect(BadRequestError, "channel must be sms or call"):
        backend.initiate(MAIN, NUMBER, channel="fax")
    assert backend.initiate(MAIN, NUMBER, channel="").verification_uuid  # "" means absent


def test_three_wrong_otps_lock_the_verification(backend: SandboxBackend) -> None:
    uuid, otp = start(backend)
    wrong = f"{(int(otp) + 1) % 10000:04d}"
    for _ in range(3):
        with expect(BadRequestError, "invalid otp"):
            backend.complete(MAIN, uuid, wrong)
    with expect(BadRequestError, "maximum otp attempts exceeded"):
        backend.complete(MAIN, uuid, otp)
    stats = backend.stats()["numbers"][NUMBER]
    assert stats == {"initiations": 1, "completion_attempts": 4, "completions": 0}


def test_two_wrong_otps_still_allow_the_right_one(backend: SandboxBackend) -> None:
    uuid, otp = start(backend)
    for _ in range(2):
        with expect(BadRequestError, "invalid otp"):
            backend.complete(MAIN, uuid, "99999")
    assert backend.complete(MAIN, uuid, otp).phone_number == NUMBER


def test_otp_expires_after_15_minutes_on_the_clock(
    backend: SandboxBackend, clock: ManualClock
) -> None:
    uuid, otp = start(backend)
    clock.advance(15 * 60)
    with expect(BadRequestError, "verification expired"):
        backend.complete(MAIN, uuid, otp)
    uuid, otp = start(backend)
    clock.advance(15 * 60 - 1)
    assert backend.complete(MAIN, uuid, otp).verification_uuid == uuid


def test_unknown_verification_is_404(backend: SandboxBackend) -> None:
    with expect(NotFoundError, "verification not found"):
        backend.complete(MAIN, "00000000-0000-4000-8000-000000000000", "1234")


def test_missing_otp_is_400_and_not_an_attempt(backend: SandboxBackend) -> None:
    uuid, _ = start(backend)
    with expect(BadRequestError, "otp is required"):
        backend.complete(MAIN, uuid, "")
    assert backend.stats()["numbers"][NUMBER]["completion_attempts"] == 0


def test_a_new_initiate_replaces_the_pending_one(backend: SandboxBackend) -> None:
    old_uuid, old_otp = start(backend)
    new_uuid, new_otp = start(backend)
    assert new_uuid != old_uuid
    with expect(NotFoundError, "verification not found"):
        backend.complete(MAIN, old_uuid, old_otp)
    assert backend.complete(MAIN, new_uuid, new_otp).verification_uuid == new_uuid


def test_already_verified_numbers_are_refused(backend: SandboxBackend) -> None:
    uuid, otp = start(backend)
    backend.complete(MAIN, uuid, otp)
    with expect(BadRequestError, "phone number is already verified"):
        backend.initiate(MAIN, NUMBER)
    with expect(BadRequestError, "phone number is already verified"):
        backend.complete(MAIN, uuid, otp)  # the same code again
    backend.seed_verified("+14155550123", subaccount=SUB1)
    with expect(BadRequestError, "phone number is already verified"):
        backend.initiate(SUB2, "+14155550123")


@pytest.mark.parametrize("number", ["+14155559999", "14155559999", "%2B14155559999", "garbage"])
def test_unknown_numbers_are_404_for_get_update_delete(
    backend: SandboxBackend, number: str
) -> None:
    for call in (
        lambda: backend.get(MAIN, number),
        lambda: backend.update(MAIN, number, alias="x"),
        lambda: backend.delete(MAIN, number),
    ):
        with expect(NotFoundError, "not found"):
            call()


def test_update_changes_alias_and_subaccount_and_modified_at(
    backend: SandboxBackend, clock: ManualClock
) -> None:
    seeded = backend.seed_verified(NUMBER, alias="old")
    clock.advance(60)
    updated = backend.update(MAIN, "%2B14155551234", alias="new", subaccount=SUB1)
    assert (updated.alias, updated.subaccount) == ("new", SUB1)
    assert updated.created_at == seeded.created_at
    assert (updated.modified_at - seeded.modified_at).total_seconds() == 60
    same = backend.update(MAIN, NUMBER, alias="", subaccount="")  # "" is absent: no change
    assert same == updated


def test_delete_removes_the_caller_id(backend: SandboxBackend) -> None:
    backend.seed_verified(NUMBER)
    backend.delete(MAIN, "14155551234")
    with expect(NotFoundError, "not found"):
        backend.get(MAIN, NUMBER)
    assert backend.list(MAIN).total_count == 0
    assert backend.initiate(MAIN, NUMBER).verification_uuid  # may be verified again


def test_subaccounts_see_only_their_own_caller_ids(backend: SandboxBackend) -> None:
    backend.seed_verified("+14155550001")
    backend.seed_verified("+14155550002", subaccount=SUB1)
    backend.seed_verified("+14155550003", subaccount=SUB2)
    assert backend.list(MAIN).total_count == 3
    assert [c.phone_number for c in backend.list(SUB1).objects] == ["+14155550002"]
    assert backend.list(MAIN, subaccount=SUB2).objects[0].phone_number == "+14155550003"
    for number in ("+14155550001", "+14155550003"):
        with expect(NotFoundError, "not found"):
            backend.get(SUB1, number)
        with expect(NotFoundError, "not found"):
            backend.delete(SUB1, number)
    assert backend.get(SUB1, "+14155550002").subaccount == SUB1


def test_only_the_main_account_may_set_a_subaccount(backend: SandboxBackend) -> None:
    with expect(BadRequestError, "subaccount can only be set with main account credentials"):
        backend.initiate(SUB1, NUMBER, subaccount=SUB2)
    with expect(BadRequestError, "invalid subaccount"):
        backend.initiate(MAIN, NUMBER, subaccount="SANOSUCHSUBACCOUNT01")
    uuid, otp = start(backend, account=SUB1)  # defaults to the subaccount itself
    assert backend.complete(SUB1, uuid, otp).subaccount == SUB1
    with expect(BadRequestError, "subaccount can only be set with main account credentials"):
        backend.update(SUB1, NUMBER, subaccount=SUB2)
    assert backend.update(MAIN, NUMBER, subaccount=SUB2).subaccount == SUB2


def test_a_subaccount_cannot_complete_anothers_verification(backend: SandboxBackend) -> None:
    uuid, otp = start(backend, subaccount=SUB1)
    with expect(NotFoundError, "verification not found"):
        backend.complete(SUB2, uuid, otp)
    assert backend.complete(SUB1, uuid, otp).subaccount == SUB1


def test_list_pages_newest_first_20_at_a_time(backend: SandboxBackend, clock: ManualClock) -> None:
    numbers = [f"+1415555{i:04d}" for i in range(45)]
    for number in numbers:
        backend.seed_verified(number)
        clock.advance(1)
    pages = [backend.list(MAIN, offset=o) for o in (0, 20, 40)]
    assert [len(p.objects) for p in pages] == [20, 20, 5]
    assert {p.total_count for p in pages} == {45}
    listed = [c.phone_number for p in pages for c in p.objects]
    assert listed == numbers[::-1]
    assert backend.list(MAIN, limit="5", offset="43").objects[-1].phone_number == numbers[0]


def test_equal_timestamps_list_in_creation_order_newest_first(backend: SandboxBackend) -> None:
    for i in range(3):
        backend.seed_verified(f"+1415555000{i}")
    assert [c.phone_number[-1] for c in backend.list(MAIN).objects] == ["2", "1", "0"]


def test_list_filters_by_country_alias_and_subaccount(backend: SandboxBackend) -> None:
    backend.seed_verified("+14155550001", alias="a")
    backend.seed_verified("+447911123456", alias="a", subaccount=SUB1)
    backend.seed_verified("+919768368717", alias="b")
    assert [c.country for c in backend.list(MAIN, country="in").objects] == ["IN"]
    assert backend.list(MAIN, alias="a").total_count == 2
    assert backend.list(MAIN, alias="a", subaccount=SUB1).total_count == 1
    assert backend.list(MAIN, country="", alias="").total_count == 3


@pytest.mark.parametrize(
    ("limit", "offset", "message"),
    [
        (0, 0, "limit must be between 1 and 20"),
        (21, 0, "limit must be between 1 and 20"),
        ("x", 0, "limit must be an integer"),
        (20, -1, "offset must not be negative"),
        (20, "1.5", "offset must be an integer"),
    ],
)
def test_list_refuses_bad_paging(
    backend: SandboxBackend, limit: int | str, offset: int | str, message: str
) -> None:
    with expect(BadRequestError, message):
        backend.list(MAIN, limit=limit, offset=offset)


@pytest.mark.parametrize(
    ("path_id", "user", "password"),
    [
        (MAIN, MAIN, "wrong"),
        (MAIN, SUB1, "sandbox-subaccount-token-1"),  # valid credentials, other account's path
        (MAIN, None, None),
        ("MANOSUCHACCOUNT00001", "MANOSUCHACCOUNT00001", DEFAULT_AUTH_TOKEN),
    ],
)
def test_basic_auth_must_match_the_path_account(
    backend: SandboxBackend, path_id: str, user: str | None, password: str | None
) -> None:
    with expect(UnauthorizedError, "authentication failed"):
        backend.begin_request(path_id, user, password)


def test_requests_over_the_rolling_window_get_429(clock: ManualClock) -> None:
    backend = SandboxBackend(clock=clock, rate=(3, 5.0))
    for _ in range(3):
        backend.begin_request(MAIN, MAIN, DEFAULT_AUTH_TOKEN)
        clock.advance(1)
    with expect(TooManyRequestsError, "too many requests"):
        backend.begin_request(MAIN, MAIN, DEFAULT_AUTH_TOKEN)  # t=3: 3 in (-2, 3]
    clock.advance(2)  # t=5: the request of t=0 has left the window; refused ones never entered
    backend.begin_request(MAIN, MAIN, DEFAULT_AUTH_TOKEN)
    with expect(TooManyRequestsError, "too many requests"):
        backend.begin_request(MAIN, MAIN, DEFAULT_AUTH_TOKEN)
    assert backend.stats()["rate_limited"] == 2


def test_a_subaccounts_requests_count_in_its_parents_window(clock: ManualClock) -> None:
    """Plivo's 300/5 s is account-wide: subaccount credentials share the main account's window."""
    backend = SandboxBackend(clock=clock, rate=(3, 5.0), subaccounts=DEFAULT_SUBACCOUNTS)
    backend.begin_request(SUB1, SUB1, "sandbox-subaccount-token-1")
    backend.begin_request(SUB2, SUB2, "sandbox-subaccount-token-2")
    backend.begin_request(MAIN, MAIN, DEFAULT_AUTH_TOKEN)
    for auth_id, token in ((MAIN, DEFAULT_AUTH_TOKEN), (SUB1, "sandbox-subaccount-token-1")):
        with expect(TooManyRequestsError, "too many requests"):
            backend.begin_request(auth_id, auth_id, token)
    clock.advance(5)  # the window has moved past all three
    backend.begin_request(SUB1, SUB1, "sandbox-subaccount-token-1")
    assert backend.stats()["rate_limited"] == 2


def test_stats_messages_and_reset(backend: SandboxBackend) -> None:
    uuid, otp = start(backend)
    backend.complete(MAIN, uuid, otp)
    backend.record_request()
    assert backend.stats()["numbers"][NUMBER] == {
        "initiations": 1,
        "completion_attempts": 1,
        "completions": 1,
    }
    assert backend.stats()["total_requests"] == 1
    backend.reset()
    assert backend.stats() == {
        "total_requests": 0,
        "rate_limited": 0,
        "faults_injected": 0,
        "numbers": {},
    }
    assert backend.messages() == [] and backend.list(MAIN).total_count == 0


def test_same_seed_same_uuids_and_otps() -> None:
    runs = []
    for _ in range(2):
        backend = SandboxBackend(clock=ManualClock(), seed=42)
        runs.append([start(backend, f"+1415555000{i}") for i in range(3)])
    assert runs[0] == runs[1]
    assert len({u for u, _ in runs[0]}) == 3


def test_listeners_hear_every_initiate(backend: SandboxBackend) -> None:
    heard: list[SentOtp] = []
    backend.subscribe(heard.append)
    uuid, otp = start(backend, channel="call", subaccount=SUB1)
    [sent] = heard
    assert (sent.verification_uuid, sent.otp, sent.channel, sent.account) == (
        uuid,
        otp,
        "call",
        SUB1,
    )
    assert (sent.expires_at - sent.sent_at).total_seconds() == 900


def test_errors_pickle_with_status_and_message() -> None:
    for error in (BadRequestError("invalid otp"), TooManyRequestsError("too many requests")):
        copy = pickle.loads(pickle.dumps(error))
        assert (type(copy), copy.status, copy.message) == (type(error), error.status, error.message)
    assert NotFoundError("not found").status == 404


def test_default_clock_is_an_offset_clock_and_repr_hides_the_token() -> None:
    backend = SandboxBackend()
    assert isinstance(backend.clock, OffsetClock)
    assert DEFAULT_AUTH_TOKEN not in repr(backend)


def test_reads_do_not_shift_the_seeded_sequence() -> None:
    quiet, busy = (SandboxBackend(clock=ManualClock(), seed=9) for _ in range(2))
    for _ in range(5):
        busy.new_api_id()
        busy.list(MAIN)
    assert start(quiet) == start(busy)


def test_subaccounts_exist_only_when_asked_for() -> None:
    """A sandbox with its own main token has no subaccount with a well-known token (issue 13)."""
    private = SandboxBackend(auth_token="a-private-token")
    assert private.subaccounts == ()
    with expect(UnauthorizedError, "authentication failed"):
        private.begin_request(SUB1, SUB1, "sandbox-subaccount-token-1")
    asked = SandboxBackend(auth_token="a-private-token", subaccounts={SUB1: "own-token"})
    assert asked.subaccounts == (SUB1,)
    asked.begin_request(SUB1, SUB1, "own-token")


class _NoScan(dict):  # type: ignore[type-arg]
    """A dict that refuses to be walked: operations that must not scan every entry use it."""

    def values(self):  # type: ignore[no-untyped-def]
        raise AssertionError("scanned every entry")

    def items(self):  # type: ignore[no-untyped-def]
        raise AssertionError("scanned every entry")

    def __iter__(self):  # type: ignore[no-untyped-def]
        raise AssertionError("scanned every entry")


def test_initiate_and_list_pages_never_scan_every_number(clock: ManualClock) -> None:
    """Issue 14: the sandbox does O(1)-ish work per initiate and per list page (indexes),
    so it is never the limit at 100,000 numbers. Walking every caller ID or verification fails."""
    backend = SandboxBackend(clock=clock, seed=3, subaccounts=DEFAULT_SUBACCOUNTS)
    for i in range(60):
        backend.seed_verified(f"+1415555{1000 + i}", subaccount=SUB1 if i % 3 == 0 else None)
        clock.advance(1)
    backend._callers = _NoScan(backend._callers)  # type: ignore[attr-defined]
    backend._verifications = _NoScan(backend._verifications)  # type: ignore[attr-defined]
    uuid, _ = start(backend, "+14155552000")
    start(backend, "+14155552000")  # supersedes the first
    assert backend.verification(uuid).state.value == "superseded"  # type: ignore[union-attr]
    first = backend.list(MAIN, limit=20)
    assert first.total_count == 60 and first.objects[0].phone_number == "+14155551059"
    last = backend.list(MAIN, limit=20, offset=40)
    assert last.objects[-1].phone_number == "+14155551000"
    by_sub = backend.list(MAIN, subaccount=SUB1, limit=20, offset=10)
    assert by_sub.total_count == 20 and len(by_sub.objects) == 10
    assert by_sub.objects[0].phone_number == "+14155551027"
    assert backend.list(SUB1, limit=5).total_count == 20
    assert backend.list(MAIN, country="us", limit=20).total_count == 60
    assert len(backend.messages("+14155552000")) == 2
