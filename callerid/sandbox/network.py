"""The phone network the sandbox plays: the person at each number texts the OTP to our inbox.

After an SMS initiate, the OTP reaches the inbox as a Plivo inbound-SMS webhook (form POST, signed
with X-Plivo-Signature-V3 / -Ma-V3 / -V3-Nonce over the inbox URL, plivo-api.md §4) and/or as one
JSONL file in a drop folder. Like the real network (issue 12): an SMS to a number phonenumbers
classifies as a fixed line never arrives, and a voice call's code is only heard by the person who
answers (readable at /_sandbox/messages, where a test plays that person), never texted. Per
number a test chooses a `Behaviour` for the SMS that do arrive. `text_heard_codes` (off unless
asked for) brings back a convenience for demos with nobody at the phones: the person who answered
the call texts the code to the inbox like an SMS reply.

Timing is on the sandbox clock: a reply is due `reply_delay_s` after the OTP was sent, a late reply
`late_s` after the verification expired, so advancing the clock past expiry + late_s delivers it at
once. A background thread delivers; API responses never wait for it, and a failed delivery is
recorded, never raised.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from callerid.sandbox.delivery import (
    Delivery,
    OutboundSms,
    send_to_drop_dir,
    webhook_delivery,
    webhook_request,
)
from callerid.sandbox.models import Channel, SentOtp
from callerid.sandbox.numbers import parse_number
from callerid.sandbox.poster import WebhookPoster
from callerid.sandbox.state import SANDBOX_INBOX_NUMBER, BackendState

log = logging.getLogger(__name__)

# After a new OTP wakes the delivery thread, it waits this long for the rest of the burst (a
# client initiates many numbers at once): fewer, fuller rounds cost both servers less CPU.
GATHER_S = 0.003


class Behaviour(StrEnum):
    REPLY = "reply"  # texts the right code after reply_delay_s (the default)
    NEVER = "never"  # never answers
    LATE = "late"  # texts the right code late_s after the verification expired
    WRONG_CODE = "wrong_code"  # texts a wrong code after reply_delay_s
    SILENT = "silent"  # reads the SMS but sends nothing: a person types it


@dataclass(frozen=True)
class _Scheduled:
    due: datetime
    sms: OutboundSms


class PhoneNetwork:
    def __init__(
        self,
        backend: BackendState,
        inbox_url: str | None = None,
        drop_dir: Path | str | None = None,
        reply_delay_s: float = 1.0,
        late_s: float = 60.0,
        inbox_number: str = SANDBOX_INBOX_NUMBER,
        timeout_s: float = 5.0,
        seed: int | None = None,
        text_heard_codes: bool = False,
        parallel: int = 8,
        gather_s: float = GATHER_S,
    ) -> None:
        self.backend = backend
        self.inbox_url = inbox_url
        self.drop_dir = Path(drop_dir) if drop_dir else None
        self.reply_delay_s = reply_delay_s
        self.late_s = late_s
        self.inbox_number = inbox_number
        self.timeout_s = timeout_s
        self.parallel = parallel  # webhooks due together are POSTed up to this many at once
        self.gather_s = gather_s
        self.text_heard_codes = text_heard_codes
        self._rng = random.Random(seed)
        self._cond = threading.Condition()
        self._behaviours: dict[str, tuple[Behaviour, float | None]] = {}
        self._scheduled: list[_Scheduled] = []
        self._deliveries: list[Delivery] = []
        self._thread: threading.Thread | None = None
        self._poster: WebhookPoster | None = None
        self._stopping = False
        backend.subscribe(self._on_sent)

    # -- configuration -----------------------------------------------------------------------

    def set_behaviour(
        self, phone_number: str, behaviour: Behaviour | str, late_s: float | None = None
    ) -> None:
        number = parse_number(phone_number)
        if number is None:
            raise ValueError("invalid phone number")
        if late_s is not None and late_s < 0:
            raise ValueError("late_s must not be negative")
        with self._cond:
            self._behaviours[number] = (Behaviour(behaviour), late_s)

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change where and when OTPs are delivered (keys: inbox_url, drop_dir, reply_delay_s,
        late_s, text_heard_codes; None unsets a target). Applies to OTPs sent from now on."""
        known = {"inbox_url", "drop_dir", "reply_delay_s", "late_s", "text_heard_codes"}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown network settings: {sorted(unknown)}")
        for key in ("reply_delay_s", "late_s"):
            if key in changes and (changes[key] is None or float(changes[key]) < 0):
                raise ValueError(f"{key} must be a number >= 0")
        with self._cond:
            if "inbox_url" in changes:
                self.inbox_url = str(changes["inbox_url"]) if changes["inbox_url"] else None
            if "drop_dir" in changes:
                self.drop_dir = Path(changes["drop_dir"]) if changes["drop_dir"] else None
            for key in ("reply_delay_s", "late_s"):
                if key in changes:
                    setattr(self, key, float(changes[key]))
            if "text_heard_codes" in changes:
                self.text_heard_codes = bool(changes["text_heard_codes"])
            return self.settings()

    def settings(self) -> dict[str, Any]:
        return {
            "inbox_url": self.inbox_url,
            "drop_dir": str(self.drop_dir) if self.drop_dir else None,
            "reply_delay_s": self.reply_delay_s,
            "late_s": self.late_s,
            "inbox_number": self.inbox_number,
            "text_heard_codes": self.text_heard_codes,
        }

    def behaviour_for(self, phone_number: str) -> Behaviour:
        number = parse_number(phone_number) or phone_number
        with self._cond:
            return self._behaviours.get(number, (Behaviour.REPLY, None))[0]

    def behaviours(self) -> dict[str, str]:
        with self._cond:
            return {n: b.value for n, (b, _) in sorted(self._behaviours.items())}

    def reset(self) -> None:
        with self._cond:
            self._behaviours.clear()
            self._scheduled.clear()
            self._deliveries.clear()

    def deliveries(self) -> list[Delivery]:
        with self._cond:
            return list(self._deliveries)

    def pending(self) -> int:
        with self._cond:
            return len(self._scheduled)

    # -- scheduling ---------------------------------------------------------------------------

    def _on_sent(self, sent: SentOtp) -> None:
        if not sent.reaches_phone:
            return  # an SMS no landline shows
        if sent.channel is Channel.CALL and not self.text_heard_codes:
            return  # heard on the call: nobody texts it
        if self.inbox_url is None and self.drop_dir is None:
            return  # nowhere to deliver: the OTP stays readable through /_sandbox/messages
        with self._cond:
            behaviour, late_s = self._behaviours.get(sent.phone_number, (Behaviour.REPLY, None))
            code = sent.otp
            if behaviour in (Behaviour.NEVER, Behaviour.SILENT):
                return
            if behaviour is Behaviour.LATE:
                due = sent.expires_at + timedelta(seconds=self.late_s if late_s is None else late_s)
            else:
                due = sent.sent_at + timedelta(seconds=self.reply_delay_s)
            if behaviour is Behaviour.WRONG_CODE:
                code = f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"
            sms = OutboundSms(
                sent=sent,
                text=f"Your verification code is {code}",
                to_number=self.inbox_number,
                message_uuid=self._new_uuid(),
                nonce=f"{self._rng.randrange(10**20):020d}",  # 20 digits, one draw
            )
            self._scheduled.append(_Scheduled(due, sms))
            self._cond.notify_all()

    def _new_uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def wake(self) -> None:
        """Re-check due messages now (call after moving the clock)."""
        with self._cond:
            self._cond.notify_all()

    def deliver_due(self) -> int:
        """Deliver every message whose time has come on the sandbox clock; returns how many."""
        now = self.backend.clock.now()
        with self._cond:
            due = [s for s in self._scheduled if s.due <= now]
            self._scheduled = [s for s in self._scheduled if s.due > now]
        for batch in _rounds(sorted(due, key=lambda s: s.due), self.parallel):
            deliveries = self._deliver(batch)
            with self._cond:
                self._deliveries.extend(deliveries)
        return len(due)

    def _deliver(self, batch: list[OutboundSms]) -> list[Delivery]:
        """One round: the webhooks go out together (see poster.py), each SMS's records in order."""
        received_at = self.backend.clock.now()
        per_sms: list[list[Delivery]] = [[] for _ in batch]
        url = self.inbox_url
        if url is not None:
            main = self.backend.token_for(self.backend.main_auth_id)
            requests = [
                webhook_request(url, sms, self.backend.token_for(sms.sent.account), main)
                for sms in batch
            ]
            if self._poster is None:  # one for every delivery: its connections stay open
                self._poster = WebhookPoster(self.timeout_s, self.parallel)
            answers = self._poster.post(url, requests)
            for records, sms, answer in zip(per_sms, batch, answers, strict=True):
                records.append(webhook_delivery(url, sms, answer, received_at))
        if self.drop_dir is not None:
            for records, sms in zip(per_sms, batch, strict=True):
                records.append(send_to_drop_dir(self.drop_dir, sms, received_at))
        results = [record for records in per_sms for record in records]
        for result in results:
            if not result.ok:
                log.warning("sandbox SMS delivery to %s failed: %s", result.target, result.error)
        return results

    # -- the delivery thread ------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sandbox-phone-network", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s + 1)
            self._thread = None
        if self._poster is not None:
            self._poster.close()
            self._poster = None

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
            try:
                self.deliver_due()
            except Exception:  # the network must outlive any bug in one delivery
                log.exception("sandbox phone network: delivery loop error")
            with self._cond:
                if self._stopping:
                    return
                # poll: the clock may be moved at any time without telling us
                woken = self._cond.wait(timeout=0.05)
            if woken and self.gather_s:
                # a new OTP: let the rest of its burst come, so that they go out together
                time.sleep(self.gather_s)


def _rounds(due: list[_Scheduled], size: int) -> list[list[OutboundSms]]:
    """Consecutive messages, at most `size` a round and never two to one number in a round:
    the messages of one number keep their order."""
    rounds: list[list[OutboundSms]] = []
    numbers: set[str] = set()
    for item in due:
        number = item.sms.sent.phone_number
        if not rounds or len(rounds[-1]) >= size or number in numbers:
            rounds.append([])
            numbers = set()
        rounds[-1].append(item.sms)
        numbers.add(number)
    return rounds
