"""Small HTTP pieces the sandbox app needs: Plivo-style JSON, request bodies, Basic auth, drops."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from callerid.sandbox.errors import BadRequestError

NEVER_ANSWER_MAX_S = 120.0  # a "never answers" request gives up after this, whatever the client


class PlivoJSON(Response):
    """JSON with sorted keys, like Plivo's responses (`alias`, `api_id`, `channel`, ...)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, sort_keys=True, separators=(", ", ": ")).encode()


class DroppedResponse(Response):
    """Start a response and stop: uvicorn then closes the connection mid-response.

    ASGI offers no "close without answering"; a started-but-unfinished response is the nearest
    thing, and clients see it as a broken connection (httpx RemoteProtocolError, requests
    ChunkedEncodingError/ConnectionError).
    """

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
            }
        )


def basic_credentials(request: Request) -> tuple[str | None, str | None]:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None, None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else (None, None)


async def read_body(request: Request) -> dict[str, Any]:
    """A JSON object (what every SDK sends) or, tolerated, a urlencoded / multipart form.

    `""` and `null` are no body: SDKs that always send JSON encode a body-less call so."""
    raw = await request.body()
    if not raw.strip():
        return {}
    content_type = request.headers.get("content-type", "").lower()
    if "multipart/form-data" in content_type:
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    if "application/x-www-form-urlencoded" in content_type:
        return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequestError("request body is not valid JSON") from None
    if body is None or body == "":
        return {}
    if not isinstance(body, dict):
        raise BadRequestError("request body must be a JSON object")
    return body


async def wait_for_disconnect(request: Request) -> None:
    """Hold a request open until its client goes away (or a generous cap passes)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + NEVER_ANSWER_MAX_S
    while loop.time() < deadline and not getattr(request.app.state, "closing", False):
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.05)
