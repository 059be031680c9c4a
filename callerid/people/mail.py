"""Email to owners over SMTP: settings from a URL, one connection per wave, retried with backoff.

    CALLERID_SMTP_URL=smtp://user:pass@mail.example.com:587?starttls=true&from=ops@example.com

`smtps://` is TLS from the first byte (port 465); `smtp://` is plain unless `starttls=true`.
The password is kept in a `SecretStr` and never appears in a log line, an error or a report:
errors are described by their class and the server's reply code only.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import SecretStr

log = logging.getLogger(__name__)

ENV_URL = "CALLERID_SMTP_URL"
DEFAULT_FROM = "callerid-bulk <callerid@localhost>"
_TRUE = {"1", "true", "yes", "on"}


class SmtpConfigError(ValueError):
    """The SMTP settings cannot be used (said without the password)."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False
    ssl: bool = False
    sender: str = DEFAULT_FROM
    timeout_s: float = 30.0
    verify_tls: bool = True

    def __repr__(self) -> str:  # the dataclass repr would be safe too; say so explicitly
        scheme = "smtps" if self.ssl else "smtp"
        return f"SmtpSettings({scheme}://{self.host}:{self.port}, starttls={self.starttls})"

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def parse_smtp_url(url: str) -> SmtpSettings:
    """Settings from `smtp[s]://[user[:pass]@]host[:port][?starttls=true&from=ADDR]`."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("smtp", "smtps"):
        raise SmtpConfigError(f"{ENV_URL} must start with smtp:// or smtps://")
    if not parts.hostname:
        raise SmtpConfigError(f"{ENV_URL} names no host")
    try:
        port = parts.port
    except ValueError:
        raise SmtpConfigError(f"{ENV_URL} has a bad port") from None
    query = {k.lower(): v[-1] for k, v in parse_qs(parts.query).items()}
    is_ssl = parts.scheme == "smtps" or query.get("ssl", "").lower() in _TRUE
    return SmtpSettings(
        host=parts.hostname,
        port=port or (465 if is_ssl else 587),
        username=unquote(parts.username) if parts.username else None,
        password=SecretStr(unquote(parts.password)) if parts.password else None,
        starttls=query.get("starttls", "").lower() in _TRUE,
        ssl=is_ssl,
        sender=query.get("from") or DEFAULT_FROM,
        verify_tls=query.get("verify", "true").lower() in _TRUE,
    )


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    body: str

    def as_message(self, sender: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = sender
        message["To"] = self.to
        message["Subject"] = self.subject
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = make_msgid(domain="callerid-bulk")
        message.set_content(self.body)
        return message


@dataclass
class SendReport:
    sent: list[str] = field(default_factory=list)  # recipients, in order
    failed: dict[str, str] = field(default_factory=dict)  # recipient -> why (no secrets)
    connections: int = 0


def describe(exc: BaseException) -> str:
    """A reason safe to store: the class and the server's code, never its whole reply."""
    code = getattr(exc, "smtp_code", None)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({str(v[0]) for v in exc.recipients.values()})
        return f"recipient refused ({', '.join(codes)})"
    return f"{type(exc).__name__}" + (f" ({code})" if code else "")


def _permanent(exc: BaseException) -> bool:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(int(v[0]) >= 500 for v in exc.recipients.values())
    code = getattr(exc, "smtp_code", None)
    return isinstance(code, int) and code >= 500


def _connection_lost(exc: BaseException) -> bool:
    # smtplib's own errors are OSErrors too; of those only a disconnect loses the connection.
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return True
    return isinstance(exc, OSError) and not isinstance(exc, smtplib.SMTPException)


class SmtpMailer:
    """Sends a wave's mail over one connection; reconnects and retries what failed transiently.

    `attempts` rounds at most, `backoff_s * 2**round` apart. A permanent refusal (5xx) fails that
    message at once; anything else is tried again in the next round over a fresh connection.
    """

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        attempts: int = 3,
        backoff_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.attempts = attempts
        self.backoff_s = backoff_s
        self._sleep = sleep

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        context = ssl.create_default_context()
        if not s.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        smtp: smtplib.SMTP
        if s.ssl:
            smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_s, context=context)
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout_s)
            if s.starttls:
                smtp.starttls(context=context)
        if s.username and s.password is not None:
            smtp.login(s.username, s.password.get_secret_value())
        return smtp

    def send(self, mails: Sequence[Mail]) -> SendReport:
        report = SendReport()
        todo = list(mails)
        for round_ in range(self.attempts):
            if not todo:
                break
            if round_:
                self._sleep(self.backoff_s * 2 ** (round_ - 1))
            todo = self._round(todo, report, last=round_ == self.attempts - 1)
        return report

    def _round(self, todo: list[Mail], report: SendReport, *, last: bool) -> list[Mail]:
        retry: list[Mail] = []
        try:
            smtp = self._connect()
        except Exception as exc:  # nothing sent this round: all of it waits for the next
            log.warning("SMTP %s: cannot connect (%s)", self.settings.where, describe(exc))
            if last:
                report.failed.update({m.to: f"cannot connect: {describe(exc)}" for m in todo})
            return [] if last else todo
        report.connections += 1
        try:
            for index, mail in enumerate(todo):
                try:
                    smtp.send_message(mail.as_message(self.settings.sender))
                    report.sent.append(mail.to)
                except Exception as exc:
                    if _connection_lost(exc):  # the rest goes over a new connection
                        rest = todo[index:]
                        if last:
                            report.failed.update({m.to: describe(exc) for m in rest})
                            return []
                        return retry + rest
                    if _permanent(exc) or last:
                        report.failed[mail.to] = describe(exc)
                    else:
                        retry.append(mail)
        finally:
            try:
                smtp.quit()
            except Exception:  # the connection may already be gone; nothing to report
                smtp.close()
        return retry
