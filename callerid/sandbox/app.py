"""The sandbox's HTTP face: `create_app(backend, network)` -> a Starlette app.

Thin on purpose (moto's `responses.py`): it parses the wire format of plivo-api.md §1.3, applies
queued faults (to authenticated requests only: a 401 leaves the fault queued), and turns backend
results and `SandboxError`s into Plivo-shaped JSON. The `Verification/` routes are registered
before `/{phone_number}` (§1.3 routing pitfall), and every API path exists with and without its
trailing slash.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from callerid.sandbox.backend import SandboxBackend, clean
from callerid.sandbox.errors import SandboxError
from callerid.sandbox.faults import FaultKind, FaultQueue, Operation
from callerid.sandbox.network import PhoneNetwork
from callerid.sandbox.web import (
    DroppedResponse,
    PlivoJSON,
    basic_credentials,
    read_body,
    wait_for_disconnect,
)

Handler = Callable[[Request, str, dict[str, Any]], Response]
API = "/v1/Account/{auth_id}/VerifiedCallerId"


def create_app(
    backend: SandboxBackend,
    network: PhoneNetwork | None = None,
    faults: FaultQueue | None = None,
    latency_ms: int = 0,
) -> Starlette:
    from callerid.sandbox.control import control_routes

    faults = faults if faults is not None else FaultQueue()

    def error(status: int, message: str) -> PlivoJSON:
        return PlivoJSON({"api_id": backend.new_api_id(), "error": message}, status_code=status)

    def ok(body: dict[str, Any], status: int = 200) -> PlivoJSON:
        return PlivoJSON({"api_id": backend.new_api_id(), **body}, status_code=status)

    def endpoint(
        operation: Operation, handler: Handler
    ) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            backend.record_request()
            auth_id = request.path_params["auth_id"]
            try:
                # before any fault: a queued fault is meant for the next request we would serve,
                # and a request refused 401 was never going to be served
                backend.authenticate(auth_id, *basic_credentials(request))
            except SandboxError as exc:
                return error(exc.status, exc.message)
            fault = faults.take(operation)
            if fault is not None:
                backend.record_fault()
                if fault.kind is FaultKind.STATUS:
                    return error(fault.status, "sandbox fault: server error")
                if fault.kind is FaultKind.DROP:
                    return DroppedResponse()
                if fault.kind is FaultKind.LATENCY:
                    await asyncio.sleep(fault.latency_ms / 1000)
            try:
                backend.admit(auth_id)
                # GET and DELETE take no body: whatever a client sends with them is ignored
                has_body = request.method not in ("GET", "DELETE")
                body = await read_body(request) if has_body else {}
                response = handler(request, auth_id, body)
            except SandboxError as exc:
                response = error(exc.status, exc.message)
            if fault is not None and fault.kind is FaultKind.TIMEOUT_AFTER_PROCESSING:
                if fault.delay_s is None:
                    await wait_for_disconnect(request)
                    return DroppedResponse()
                await asyncio.sleep(fault.delay_s)
            if latency_ms:
                # on the way back: the rolling window then sees requests when the client sent them
                await asyncio.sleep(latency_ms / 1000)
            return response

        return serve

    def initiate(request: Request, auth_id: str, body: dict[str, Any]) -> Response:
        started = backend.initiate(
            auth_id,
            body.get("phone_number"),
            alias=body.get("alias"),
            channel=body.get("channel"),
            subaccount=body.get("subaccount"),
        )
        return ok({"message": started.message, "verification_uuid": started.verification_uuid}, 201)

    def complete(request: Request, auth_id: str, body: dict[str, Any]) -> Response:
        uuid = request.path_params["verification_uuid"]
        return ok(backend.complete(auth_id, uuid, body.get("otp")).completed_json())

    def get(request: Request, auth_id: str, body: dict[str, Any]) -> Response:
        return ok(backend.get(auth_id, request.path_params["phone_number"]).get_json())

    def update(request: Request, auth_id: str, body: dict[str, Any]) -> Response:
        number = request.path_params["phone_number"]
        caller = backend.update(
            auth_id, number, alias=body.get("alias"), subaccount=body.get("subaccount")
        )
        return ok(caller.get_json())

    def delete(request: Request, auth_id: str, body: dict[str, Any]) -> Response:
        backend.delete(auth_id, request.path_params["phone_number"])
        return Response(status_code=204)

    def list_(request: Request, auth_id: str, body: dict[str, Any]) -> Response:
        query = request.query_params
        filters = {k: query.get(k) for k in ("country", "subaccount", "alias")}
        page = backend.list(
            auth_id, limit=query.get("limit"), offset=query.get("offset"), **filters
        )
        kept = {k: v for k, v in filters.items() if clean(v) is not None}

        def uri(offset: int) -> str:
            params = urlencode({"limit": page.limit, "offset": offset, **kept})
            return f"/v1/Account/{auth_id}/VerifiedCallerId/?{params}"

        end = page.offset + page.limit
        meta = {
            "limit": page.limit,
            "offset": page.offset,
            "total_count": page.total_count,
            "next": uri(end) if end < page.total_count else None,
            "previous": uri(max(page.offset - page.limit, 0)) if page.offset > 0 else None,
        }
        return ok({"meta": meta, "objects": [c.list_json(auth_id) for c in page.objects]})

    def both(path: str, ep: Callable[[Request], Awaitable[Response]], method: str) -> list[Route]:
        return [Route(path, ep, methods=[method]), Route(path + "/", ep, methods=[method])]

    number_path = API + "/{phone_number}"
    routes: list[BaseRoute] = [
        *both(
            API + "/Verification/{verification_uuid}",
            endpoint(Operation.COMPLETE, complete),
            "POST",
        ),
        *both(API, endpoint(Operation.INITIATE, initiate), "POST"),
        *both(API, endpoint(Operation.LIST, list_), "GET"),
        *both(number_path, endpoint(Operation.GET, get), "GET"),
        *both(number_path, endpoint(Operation.UPDATE, update), "POST"),
        *both(number_path, endpoint(Operation.DELETE, delete), "DELETE"),
        *control_routes(backend, network, faults),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = {404: "not found", 405: "method not allowed"}.get(exc.status_code, exc.detail)
        return error(exc.status_code, message)

    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    app.state.backend, app.state.network, app.state.faults = backend, network, faults
    return app
