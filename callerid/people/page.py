"""The code page: `GET/POST /codes/<link>` on the inbox server. No JavaScript, phone-sized.

GET lists the link's numbers (pretty-printed, with alias) with one field each while a code is
wanted, and each number's outcome as the pipeline learns it (the page refreshes itself by a meta
tag while a code is being checked). POST stores each typed code in the inbox table, exactly as
`callerid otp submit` does (source `page`), then redirects back to GET.

Refused, with nothing stored: a forged, altered, malformed or expired link (403); a POST without
the CSRF token bound to this link and to the page's cookie (403); a code for a number the link
does not name (403); a code for a number that has had `MAX_WRONG_PER_LINK` codes refused through
this link (403); more than `rate` POSTs a minute on one link, counted in the ledger across every
process serving the page (429, `limits.py`). The page never shows a code.
"""

from __future__ import annotations

import logging
import uuid
from html import escape

from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from callerid.clock import Clock, SystemClock
from callerid.inbox.db import SessionScope
from callerid.inbox.manual import submit_code
from callerid.inbox.models import MessageSource
from callerid.inbox.text import is_code
from callerid.people import links
from callerid.people.keys import link_key
from callerid.people.limits import LinkRateLimit
from callerid.people.outcomes import (
    MAX_WRONG_PER_LINK,
    PageRow,
    page_prefix,
    page_rows,
    refused_count,
    typed,
)

log = logging.getLogger(__name__)

COOKIE = "callerid_csrf"
FIELD_PREFIX = "code_"
MAX_BODY_BYTES = 64 * 1024
RATE_PER_MINUTE = 10
REFRESH_S = 3


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:1rem auto;padding:0 1rem}"
    "li{margin:.8rem 0;list-style:none}ul{padding:0}input[type=text]{font-size:1.3rem;"
    "width:8em;letter-spacing:.1em}button{font-size:1.1rem;padding:.5rem 1.2rem}"
    ".verified{color:#067d17}.wrong,.locked,.failed{color:#b00020}small{color:#555}"
)


def _html(title: str, body: str, *, refresh: bool = False) -> str:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_S}">' if refresh else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="referrer" content="no-referrer">{meta}<title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def _row_html(row: PageRow) -> str:
    alias = f" <small>{escape(row.alias)}</small>" if row.alias else ""
    name = FIELD_PREFIX + row.e164.lstrip("+")
    field = ""
    if row.can_type:
        field = (
            f'<br><label>Code for {escape(row.pretty)}: <input type="text" name="{name}" '
            'inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{4,8}" '
            'maxlength="8"></label>'
        )
    return (
        f'<li data-number="{escape(row.e164)}"><strong>{escape(row.pretty)}</strong>{alias}'
        f'<br><span class="status {row.state.value}">{escape(row.label)}</span>{field}</li>'
    )


def render(rows: list[PageRow], csrf: str, expires_hhmm: str) -> str:
    typing = any(r.can_type for r in rows)
    form = (
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        '<button type="submit">Send the codes</button>'
        if typing
        else ""
    )
    intro = (
        f"<p>Type the code Plivo sent to each number (SMS or voice call) before "
        f"{escape(expires_hhmm)} UTC.</p>"
        if typing
        else "<p>Nothing to type right now.</p>"
    )
    body = (
        f"<h1>Verification codes</h1>{intro}"
        f'<form method="post"><ul>{"".join(_row_html(r) for r in rows)}</ul>{form}</form>'
    )
    return _html("Verification codes", body, refresh=any(r.pending for r in rows))


def _refusal(exc: Refused) -> HTMLResponse:
    body = f"<h1>Not accepted</h1><p>{escape(exc.reason)}</p>"
    return HTMLResponse(_html("Not accepted", body), status_code=exc.status)


class CodePage:
    """The routes' state: where codes go, the link key (read once), the per-link rate limit
    (counted in the ledger: shared by every process serving the page)."""

    def __init__(
        self,
        scope: SessionScope,
        account: str,
        *,
        clock: Clock | None = None,
        rate_per_minute: int = RATE_PER_MINUTE,
        secure_cookie: bool = False,
    ) -> None:
        self.scope = scope
        self.account = account
        self.clock = clock or SystemClock()
        self.limit = LinkRateLimit(scope, rate_per_minute, self.clock)
        self.secure_cookie = secure_cookie
        self._key: bytes | None = None

    def key(self) -> bytes:
        if self._key is None:
            with self.scope() as session:
                self._key = link_key(session)
        return self._key

    def link(self, token: str) -> links.Link:
        try:
            link = links.verify(self.key(), token, self.clock.now())
        except links.LinkRefusedError as exc:
            raise Refused(403, f"This link cannot be used: {exc.reason}.") from None
        if link.account != self.account:
            raise Refused(403, "This link is for another account.")
        return link

    def rows(self, link: links.Link, token: str) -> list[PageRow]:
        with self.scope() as session:
            return page_rows(session, link, links.link_id(token))

    def store(self, link: links.Link, token: str, codes: dict[str, str]) -> None:
        lid = links.link_id(token)
        with self.scope() as session:
            for e164 in codes:  # every check first: a refused request stores nothing
                if refused_count(typed(session, lid, e164)) >= MAX_WRONG_PER_LINK:
                    raise Refused(403, "Too many wrong codes for a number on this link.")
            now = self.clock.now()
            for e164, code in codes.items():
                submit_code(
                    session,
                    self.account,
                    e164,
                    code,
                    source=MessageSource.PAGE,
                    external_id=page_prefix(lid, e164) + uuid.uuid4().hex,
                    now=now,
                )

    # -- handlers ---------------------------------------------------------------------------

    async def get(self, request: Request) -> Response:
        token = request.path_params["token"]
        try:
            link = await run_in_threadpool(self.link, token)
            rows = await run_in_threadpool(self.rows, link, token)
        except Refused as exc:
            log.info("code page refused a GET (%s): %s", exc.status, exc.reason)
            return _refusal(exc)
        except SQLAlchemyError as exc:
            log.error("code page: ledger unavailable (%s)", type(exc).__name__)
            return HTMLResponse(_html("Try again", "<p>Try again in a moment.</p>"), 503)
        nonce = request.cookies.get(COOKIE) or links.new_nonce()
        csrf = links.csrf_token(self.key(), token, nonce)
        response = HTMLResponse(render(rows, csrf, link.expires_at.strftime("%H:%M")))
        response.set_cookie(
            COOKIE,
            nonce,
            path="/codes/",
            httponly=True,
            samesite="strict",
            secure=self.secure_cookie,
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    async def _codes(self, request: Request, token: str, link: links.Link) -> dict[str, str]:
        declared = request.headers.get("content-length", "")
        if declared and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            raise Refused(413, "Too much data.")
        try:
            form = await request.form(max_fields=len(link.numbers) + 4, max_files=0)
        except Exception:
            raise Refused(400, "The form could not be read.") from None
        csrf = form.get("csrf")
        if not links.csrf_ok(
            self.key(), token, request.cookies.get(COOKIE), csrf if isinstance(csrf, str) else None
        ):
            raise Refused(403, "The form expired or did not come from this page; reload it.")
        codes: dict[str, str] = {}
        for name, value in form.multi_items():
            if name == "csrf":
                continue
            if not name.startswith(FIELD_PREFIX) or not isinstance(value, str):
                raise Refused(400, "Unexpected field.")
            e164 = "+" + name.removeprefix(FIELD_PREFIX)
            if not link.names(e164):
                raise Refused(403, "This link is not for that number.")
            code = value.strip()
            if not code:
                continue
            if not is_code(code):
                raise Refused(400, "A code is 4 to 8 digits.")
            if e164 in codes:
                raise Refused(400, "One code per number.")
            codes[e164] = code
        return codes

    async def post(self, request: Request) -> Response:
        token = request.path_params["token"]
        try:
            link = await run_in_threadpool(self.link, token)
            if not await run_in_threadpool(self.limit.allow, links.link_id(token)):
                raise Refused(429, "Too many tries on this link; wait a minute.")
            codes = await self._codes(request, token, link)
            if codes:
                await run_in_threadpool(self.store, link, token, codes)
        except Refused as exc:
            log.info("code page refused a POST (%s): %s", exc.status, exc.reason)
            return _refusal(exc)
        except SQLAlchemyError as exc:
            log.error("code page: ledger unavailable (%s)", type(exc).__name__)
            return HTMLResponse(_html("Try again", "<p>Try again in a moment.</p>"), 503)
        log.info("code page: %d codes typed through link %s", len(codes), links.link_id(token))
        return RedirectResponse(request.url.path, status_code=303)


def code_page_base(public_url: str) -> str:
    """Links' base from a public URL: `https://h/plivo/sms` (a webhook URL) -> `https://h`;
    any other URL is the base itself (a proxy may serve us under a prefix)."""
    base = public_url.rstrip("/")
    for suffix in ("/plivo/sms", "/codes"):
        base = base.removesuffix(suffix)
    return base


def code_page_routes(page: CodePage) -> list[Route]:
    return [
        Route("/codes/{token}", page.get, methods=["GET"]),
        Route("/codes/{token}", page.post, methods=["POST"]),
    ]


def add_code_page(app: Starlette, page: CodePage) -> None:
    """Serve the code page from an existing app (the inbox server's)."""
    app.router.routes.extend(code_page_routes(page))
