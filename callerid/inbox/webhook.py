"""The inbound-SMS webhook receiver: Plivo (or the sandbox) POSTs (or GETs) each SMS here.

    with WebhookServer(ledger_url, account, tokens={auth_id: token}, main_token=token) as hook:
        sandbox = SandboxServer(inbox_url=hook.url)

Answers: 200 once the message is stored (again 200 for a replay of the same MessageUUID: it is
stored once); 401 unsigned, 403 forged, 413 too large (and the connection is closed: the rest of
the body is never read), 415 not a form, 400 malformed - and then nothing is stored. No input
makes it answer 5xx: every error is caught. The one 503 is the database being unreachable, which
is no fault of the request, so the sender should retry it.

The V3 signature is over the sorted keys and values joined without separators, so a captured
request can be re-split under the same signature (`MessageUUID=<uuid>PowerpackUUID` with
PowerpackUUID dropped, `Text=...To<to>` with To dropped). Hence the fields Plivo always sends
(`REQUIRED_FIELDS`) must all be there and MessageUUID must be a canonical UUID: no re-split can
then change the MessageUUID, and a message is stored once per MessageUUID, so a re-split replay
is only ever a replay.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from callerid.clock import Clock, SystemClock
from callerid.inbox.db import SessionScope
from callerid.inbox.models import (
    MAX_EXTERNAL_ID_CHARS,
    MAX_NUMBER_CHARS,
    MAX_TEXT_CHARS,
    InboundMessage,
    MessageSource,
)
from callerid.inbox.webhook_auth import Credentials, Verdict, check_signature
from callerid.inbox.writer import MessageWriter

log = logging.getLogger(__name__)

DEFAULT_PATH = "/plivo/sms"
MAX_BODY_BYTES = 16 * 1024  # a 1600-character SMS form is ~10 KB even fully percent-encoded
MAX_FIELDS = 64
_FORM = "application/x-www-form-urlencoded"
REQUIRED_FIELDS = ("From", "To", "Text", "Type", "MessageUUID")
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_OK_XML = '<?xml version="1.0" encoding="utf-8"?><Response></Response>'


class RejectedRequest(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason

    def response(self) -> Response:
        # 413: the body may still be coming; say so and close rather than read it to the end
        headers = {"Connection": "close"} if self.status == 413 else None
        return PlainTextResponse(self.reason, status_code=self.status, headers=headers)


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise RejectedRequest(413, "body too large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise RejectedRequest(413, "body too large")
    return bytes(body)


def _parse_fields(raw: str) -> dict[str, list[str]]:
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise RejectedRequest(400, "malformed form") from None
    fields: dict[str, list[str]] = {}
    for key, value in pairs:
        fields.setdefault(key, []).append(value)
    return fields


async def _params(request: Request) -> dict[str, list[str]]:
    if request.method == "GET":
        return _parse_fields(request.url.query)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != _FORM:
        raise RejectedRequest(415, "expected an application/x-www-form-urlencoded body")
    body = await _read_body(request)
    try:
        return _parse_fields(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise RejectedRequest(400, "body is not UTF-8") from None


def _one(fields: dict[str, list[str]], name: str, limit: int, required: bool = True) -> str | None:
    values = fields.get(name)
    if not values:
        if required:
            raise RejectedRequest(400, f"missing {name}")
        return None
    if len(values) > 1:
        raise RejectedRequest(400, f"{name} given more than once")
    value = values[0]
    if len(value) > limit:
        raise RejectedRequest(400, f"{name} too long")
    return value


def _number(fields: dict[str, list[str]], name: str) -> str:
    value = (_one(fields, name, MAX_NUMBER_CHARS) or "").strip()
    if not value or not value.isprintable():
        raise RejectedRequest(400, f"bad {name}")
    return value


def _message(fields: dict[str, list[str]], account: str, now: datetime) -> InboundMessage:
    missing = [name for name in REQUIRED_FIELDS if name not in fields]
    if missing:
        raise RejectedRequest(400, f"missing {', '.join(missing)}")
    uuid = _one(fields, "MessageUUID", MAX_EXTERNAL_ID_CHARS) or ""
    if not _CANONICAL_UUID.fullmatch(uuid):
        raise RejectedRequest(400, "MessageUUID is not a canonical UUID")
    sender, receiver = _number(fields, "From"), _number(fields, "To")
    text = _one(fields, "Text", MAX_TEXT_CHARS) or ""
    kind = _one(fields, "Type", MAX_NUMBER_CHARS) or ""
    if not kind.strip() or not kind.isprintable():
        raise RejectedRequest(400, "bad Type")
    return InboundMessage(
        source=MessageSource.WEBHOOK,
        external_id=uuid,
        from_number=sender,
        to_number=receiver,
        text=text,
        received_at=now,
        account=account,
    )


def create_webhook_app(
    scope: SessionScope,
    account: str,
    credentials: Credentials,
    public_url: str | Callable[[], str],
    allow_v2: bool = False,
    clock: Clock | None = None,
    routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The Starlette app; `public_url` is the URL Plivo calls (signatures are over it).

    `routes` are served next to the webhook by the same server (and under the same limits).
    """
    now = (clock or SystemClock()).now
    url_of: Callable[[], str] = public_url if callable(public_url) else (lambda: public_url)
    path = urlsplit(url_of()).path or DEFAULT_PATH

    writer = MessageWriter(scope, now)  # a 200 is sent once the message's commit is done

    async def receive(request: Request) -> Response:
        try:
            fields = await _params(request)
            headers = {k.lower(): v for k, v in request.headers.items()}
            verdict = check_signature(
                request.method, url_of(), fields, headers, credentials, allow_v2
            )
            if verdict is Verdict.UNSIGNED:
                raise RejectedRequest(401, "missing Plivo signature")
            if verdict is Verdict.FORGED:
                raise RejectedRequest(403, "invalid Plivo signature")
            message = _message(fields, account, now())
        except RejectedRequest as exc:
            # a warning: a refused SMS is lost unless the sender retries, so it leaves a trace
            # (rate-limited per kind by the server, as every warning of a server we run)
            log.warning("webhook request refused (%s): %s", exc.status, exc.reason)
            return exc.response()
        except Exception as exc:  # any other surprise from the input is still the input's fault
            log.warning("webhook request refused (400): %s", type(exc).__name__)
            return PlainTextResponse("malformed request", status_code=400)
        try:
            message_id, created = await writer.save(message)
        except SQLAlchemyError as exc:
            log.error("inbox database unavailable: %s", type(exc).__name__)
            return PlainTextResponse(
                "inbox database unavailable", status_code=503, headers={"Retry-After": "5"}
            )
        except Exception:  # a bug must not turn into a 5xx that Plivo retries forever
            log.exception("inbound SMS %s could not be stored", message.external_id)
            return PlainTextResponse("message could not be stored", status_code=422)
        log.info(
            "inbound SMS %s %s as inbox message %d",
            message.external_id,
            "stored" if created else "already stored",
            message_id,
        )
        return Response(_OK_XML, media_type="application/xml")

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[
            Route(path, receive, methods=["GET", "POST"]),
            Route("/healthz", health, methods=["GET"]),
            *routes,
        ]
    )
    app.router.redirect_slashes = False  # a redirected POST is not followed by Plivo: say 404
    return app
