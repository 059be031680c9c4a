"""Sandbox-only routes under /_sandbox (no auth: the sandbox listens on 127.0.0.1).

GET  /_sandbox/messages?phone_number=E164   every OTP sent (how a person "hears" a voice OTP)
GET  /_sandbox/stats                        requests, 429s, faults, per-number counts
GET  /_sandbox/clock   POST {"advance_s": N} (or {"offset_s": N} to follow another clock)
POST /_sandbox/reset                        state, faults, behaviours and deliveries
GET/POST/DELETE /_sandbox/faults            queue faults (see faults.py)
GET/POST /_sandbox/behaviour                {"phone_number", "behaviour", "late_s"?}
POST /_sandbox/caller_ids                   seed caller IDs: one object or {"caller_ids": [...]}
GET/POST /_sandbox/network                  {"inbox_url", "drop_dir", "reply_delay_s", "late_s"}
GET  /_sandbox/deliveries                   outcome of every simulated SMS delivery
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from callerid.sandbox.backend import SandboxBackend
from callerid.sandbox.errors import SandboxError
from callerid.sandbox.faults import Fault, FaultQueue
from callerid.sandbox.models import format_timestamp
from callerid.sandbox.network import Behaviour, PhoneNetwork


def _bad(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    body = json.loads(raw)
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body


def control_routes(
    backend: SandboxBackend, network: PhoneNetwork | None, faults: FaultQueue
) -> list[BaseRoute]:
    async def messages(request: Request) -> Response:
        number = request.query_params.get("phone_number")
        found = backend.messages(number)
        return JSONResponse({"messages": [m.to_json() for m in found]})

    async def stats(request: Request) -> Response:
        return JSONResponse(backend.stats())

    def clock_json() -> dict[str, Any]:
        now = backend.clock.now()
        offset = getattr(backend.clock, "offset_s", None)
        if offset is None:
            offset = (now - datetime.now(UTC)).total_seconds()
        return {"now": format_timestamp(now), "offset_s": offset}

    async def clock(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(clock_json())
        try:
            body = await _json(request)
            advance = getattr(backend.clock, "advance", None)
            if advance is None:
                return _bad("this sandbox's clock cannot be moved", 409)
            if "offset_s" in body and hasattr(backend.clock, "set_offset"):
                backend.clock.set_offset(float(body["offset_s"]))
            else:
                advance(float(body.get("advance_s", 0)))
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
        if network is not None:
            network.wake()
        return JSONResponse(clock_json())

    async def reset(request: Request) -> Response:
        backend.reset()
        faults.clear()
        if network is not None:
            network.reset()
        return JSONResponse({"reset": True})

    async def fault_queue(request: Request) -> Response:
        if request.method == "POST":
            try:
                fault = Fault.from_json(await _json(request))
            except ValueError as exc:
                return _bad(str(exc))
            faults.add(fault)
        elif request.method == "DELETE":
            faults.clear()
        return JSONResponse({"faults": [f.to_json() for f in faults.pending()]})

    async def behaviour(request: Request) -> Response:
        if network is None:
            return _bad("this sandbox has no phone network", 409)
        if request.method == "POST":
            try:
                body = await _json(request)
                network.set_behaviour(
                    str(body.get("phone_number", "")),
                    Behaviour(str(body.get("behaviour", ""))),
                    late_s=None if body.get("late_s") is None else float(body["late_s"]),
                )
            except (ValueError, TypeError) as exc:
                return _bad(str(exc))
        return JSONResponse({"behaviours": network.behaviours()})

    async def caller_ids(request: Request) -> Response:
        try:
            body = await _json(request)
            items = body.get("caller_ids", [body])
            seeded = [
                backend.seed_verified(
                    str(item.get("phone_number", "")),
                    alias=item.get("alias"),
                    subaccount=item.get("subaccount"),
                    country=item.get("country"),
                )
                for item in items
            ]
        except SandboxError as exc:
            return _bad(exc.message, exc.status)
        except (ValueError, TypeError, AttributeError) as exc:
            return _bad(str(exc))
        return JSONResponse({"caller_ids": [c.get_json() for c in seeded]}, status_code=201)

    async def network_settings(request: Request) -> Response:
        if network is None:
            return _bad("this sandbox has no phone network", 409)
        if request.method == "GET":
            return JSONResponse(network.settings())
        try:
            return JSONResponse(network.configure(**await _json(request)))
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))

    async def deliveries(request: Request) -> Response:
        found = network.deliveries() if network is not None else []
        return JSONResponse({"deliveries": [d.to_json() for d in found]})

    return [
        Route("/_sandbox/messages", messages, methods=["GET"]),
        Route("/_sandbox/stats", stats, methods=["GET"]),
        Route("/_sandbox/clock", clock, methods=["GET", "POST"]),
        Route("/_sandbox/reset", reset, methods=["POST"]),
        Route("/_sandbox/faults", fault_queue, methods=["GET", "POST", "DELETE"]),
        Route("/_sandbox/behaviour", behaviour, methods=["GET", "POST"]),
        Route("/_sandbox/caller_ids", caller_ids, methods=["POST"]),
        Route("/_sandbox/network", network_settings, methods=["GET", "POST"]),
        Route("/_sandbox/deliveries", deliveries, methods=["GET"]),
    ]
