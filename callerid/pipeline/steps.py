"""The batch steps of the loop: initiate, complete, expire. Each works on many numbers at once.

Ledger work runs in a worker thread (`asyncio.to_thread`), so the event loop keeps handing out
rate-limiter grants to the other step's requests meanwhile.

Order of writes, for crash safety (design.md): the intent (`initiating` / `completing`) is
committed before the API calls go out; the outcomes are committed together after they return.
A crash in between leaves intent rows that `recover` resolves on the next run, never by
re-sending an initiate whose OTP may still be live.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from datetime import datetime, timedelta

from callerid.ledger.models import NumberStatus
from callerid.pipeline import ledger_ops
from callerid.pipeline.outcome import Outcome
from callerid.pipeline.session import Pipeline, StepResult
from callerid.plivo import (
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
    VerificationExpiredError,
)

log = logging.getLogger(__name__)

# A re-initiate waits this long past our own estimate of an OTP's expiry: our estimate starts when
# we send, Plivo's when it receives, and a request may take up to the client timeout to arrive.
REINITIATE_GRACE = timedelta(seconds=30)
# A batch's initiates go out within this long of its claim, or not at all (they go back to the
# queue): the claim stamps each intent row's window from the end of it, so that after a crash
# mid-batch no rerun re-initiates a number whose OTP went out late in the batch. Batches are sized
# to fit in half of it at the account's rate (completions come first in the limiter).
SEND_WINDOW = timedelta(seconds=60)
# A batch's completions go out within this long of their claim, or not at all (the number goes
# back to `initiated`, its code kept for the next round). With the client's 10 s read timeout the
# last answer is in before REINITIATE_GRACE: only then may another worker on the same ledger
# take a row still `completing` for a killed run's and resume it, so the same code is never
# submitted by two workers at once (a wrong one would count twice toward Plivo's 3).
COMPLETE_SEND_WINDOW = timedelta(seconds=15)
_TRANSIENT = (RateLimitedError, ServerError, PlivoConnectionError, PlivoTimeoutError)


def decision_time(pipeline: Pipeline) -> datetime:
    """`now` for expiry decisions: shifted back by the grace, so we never re-initiate early."""
    return pipeline.clock.now() - REINITIATE_GRACE


async def _listed(pipeline: Pipeline, e164: str) -> bool | None:
    """Is `e164` a caller ID of the account? None when the GET itself failed (unknown)."""
    try:
        await pipeline.client.get(e164)
    except NotFoundError:
        return False
    except AuthenticationError:
        raise
    except PlivoError as exc:
        log.warning("could not look %s up: %s", e164, exc.message)
        return None
    return True


def batch_cap(pipeline: Pipeline) -> int:
    """The most initiates one batch may claim: what the limiter lets out in half a send window."""
    return max(1, int(pipeline.client.limiter.rate_per_s * SEND_WINDOW.total_seconds() / 2))


async def _initiate_one(pipeline: Pipeline, target: ledger_ops.Target, send_by: float) -> Outcome:
    asked_at = pipeline.clock.now()
    try:
        sent = await pipeline.client.initiate(
            target.e164,
            alias=target.alias,
            channel=target.channel,
            subaccount=target.subaccount,
            send_by=send_by,
        )
    except NotSentError as exc:
        return Outcome(target.e164, NumberStatus.QUEUED, f"not sent, will retry: {exc.message}")
    except OutcomeUnknownError as exc:
        # The OTP may be on its way: keep the intent row; recovery resolves it after the window.
        return Outcome(target.e164, NumberStatus.INITIATING, f"outcome unknown: {exc.message}")
    except AuthenticationError:
        raise
    except _TRANSIENT as exc:
        return Outcome(target.e164, NumberStatus.QUEUED, f"not sent, will retry: {exc.message}")
    except PlivoError as exc:
        # plivo-api.md §0: on any 4xx from initiate, GET the number: listed means verified.
        listed = isinstance(exc, AlreadyVerifiedError) or await _listed(pipeline, target.e164)
        if listed:
            return Outcome(target.e164, NumberStatus.ALREADY_VERIFIED, "listed by the account")
        # Not listed (or the look-up failed too): the rejection stands; reconcile can requeue.
        return Outcome(target.e164, NumberStatus.FAILED, f"initiate rejected: {exc.message}")
    # Each number's window from its own request: Plivo started it before this answer came back.
    return Outcome(
        target.e164,
        NumberStatus.INITIATED,
        "initiated",
        sent.verification_uuid,
        asked_at=asked_at,
        answered_at=pipeline.clock.now(),
    )


async def initiate_batch(pipeline: Pipeline, limit: int) -> StepResult:
    """Initiate up to `limit` queued numbers of this run; intent rows are committed first."""
    claimed_at = pipeline.clock.now()
    send_by = time.monotonic() + SEND_WINDOW.total_seconds()
    targets = await asyncio.to_thread(
        ledger_ops.claim_for_initiate,
        pipeline,
        min(limit, batch_cap(pipeline)),
        claimed_at,
        SEND_WINDOW,
    )
    if not targets:
        return StepResult()
    results = await asyncio.gather(
        *(_initiate_one(pipeline, t, send_by) for t in targets), return_exceptions=True
    )
    outcomes: list[Outcome] = []
    fatal: BaseException | None = None
    for target, result in zip(targets, results, strict=True):
        if isinstance(result, BaseException):
            fatal = fatal or result
            reason = f"not sent: {type(result).__name__}"
            result = Outcome(target.e164, NumberStatus.QUEUED, reason)
        outcomes.append(result)
    await asyncio.to_thread(ledger_ops.record_initiations, pipeline, outcomes, claimed_at)
    if fatal is not None:
        raise fatal  # bad credentials and bugs stop the run; the rows went back to the queue
    return StepResult(len(targets), dict(Counter(o.status.value for o in outcomes)))


async def _complete_one(
    pipeline: Pipeline, code: ledger_ops.MatchedCode, send_by: float | None = None
) -> Outcome:
    e164 = code.e164
    try:
        await pipeline.client.complete(
            code.verification_uuid, code.code, phone_number=e164, send_by=send_by
        )
    except NotSentError as exc:  # an earlier attempt may have gone: resubmitting is safe
        return Outcome(e164, NumberStatus.INITIATED, exc.message, message_used=False)
    except InvalidOtpError:
        return Outcome(e164, NumberStatus.INITIATED, "wrong code", wrong_otp=True)
    except AlreadyVerifiedError:
        return Outcome(e164, NumberStatus.VERIFIED, "verified (already)")
    except OtpAttemptsExceededError:
        return Outcome(e164, NumberStatus.EXPIRED, "locked after too many wrong codes")
    except (VerificationExpiredError, NotFoundError, OutcomeUnknownError) as exc:
        listed = await _listed(pipeline, e164)
        if listed:
            return Outcome(e164, NumberStatus.VERIFIED, "verified (confirmed by GET)")
        if listed is None or isinstance(exc, OutcomeUnknownError):
            # Unknown either way: keep the code; the next round submits it again.
            return Outcome(e164, NumberStatus.INITIATED, exc.message, message_used=False)
        return Outcome(e164, NumberStatus.EXPIRED, f"code came too late: {exc.message}")
    except _TRANSIENT as exc:
        # Keep the message: the next round submits the same code again.
        return Outcome(e164, NumberStatus.INITIATED, exc.message, message_used=False)
    except RequestRejectedError as exc:
        return Outcome(e164, NumberStatus.INITIATED, f"code rejected: {exc.message}")
    return Outcome(e164, NumberStatus.VERIFIED, "verified", code.verification_uuid)


async def complete_matched(pipeline: Pipeline) -> StepResult:
    """Submit every OTP the inbox matched to a live verification (completions go first)."""
    send_by = time.monotonic() + COMPLETE_SEND_WINDOW.total_seconds()  # before the claim's wait
    codes = await asyncio.to_thread(ledger_ops.claim_matched, pipeline, pipeline.clock.now())
    if not codes:
        return StepResult()
    mine = {c.e164 for c in codes}
    pipeline.completing |= mine
    try:
        results = await asyncio.gather(*(_complete_one(pipeline, c, send_by) for c in codes))
        await asyncio.to_thread(ledger_ops.record_completions, pipeline, codes, list(results))
    finally:
        pipeline.completing -= mine  # left `completing` by a failure: recovery resumes them
    return StepResult(len(codes), dict(Counter(o.status.value for o in results)))


async def expire_due(pipeline: Pipeline) -> StepResult:
    """Expire live verifications past their window; re-queue or fail them by attempts left;
    resume what a killed run left `completing` once its grace is over (its code is submitted
    again)."""
    counts = await asyncio.to_thread(
        ledger_ops.expire_and_recover,
        pipeline,
        decision_time(pipeline),
        frozenset(pipeline.completing),
    )
    return StepResult(sum(counts.values()), counts)
