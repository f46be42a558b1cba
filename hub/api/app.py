"""The phones' API application (composition happens in the daemon; nothing is built at import).

Every route is under /api/v1 and needs a token from the cloud (wire.tokens) in
`Authorization: Bearer ...`; errors are JSON `{"error": <code>, "message": <reason>}` from one
handler, never a bare 500 for bad input. Request bodies are capped before they are read.

Annotations are evaluated eagerly here (no `from __future__ import annotations`): FastAPI reads
the dependencies' `Annotated[...]` types at run time, including ones built in `create_app`.
"""

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from wire.tokens import Claims, Role, TokenError, TokenInvalid, verify

API_VERSION = "1"
MAX_BODY = 8 * 1024 * 1024  # a bulk-sync of 1,000 records fits with room to spare


@dataclass(frozen=True, slots=True)
class HubStatus:
    """What `GET /api/v1/hub` reports beyond the identity."""

    backlog: int
    at_capacity: bool
    capacity_hours_left: float | None


@dataclass(frozen=True, slots=True)
class ApiContext:
    """What the API needs from the hub, handed in by the composition root."""

    hub_id: str
    cloud_signing_key: Ed25519PublicKey
    revoked: Callable[[], Collection[str]]
    status: Callable[[], HubStatus]
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    max_body: int = MAX_BODY


class HubInfo(BaseModel):
    """The hub as a phone sees it."""

    hub_id: str
    api_version: str
    hub_time: datetime
    """The hub's clock, so that a phone can see a skew."""
    agent_id: str
    role: Role
    backlog: int
    at_capacity: bool
    capacity_hours_left: float | None


class ApiError(BaseModel):
    """Every error body."""

    error: str
    message: str


def create_app(ctx: ApiContext) -> FastAPI:
    """The FastAPI application for `ctx`."""
    app = FastAPI(
        title="Tecsa Hub API",
        version=API_VERSION,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        responses={401: {"model": ApiError}, 403: {"model": ApiError}, 413: {"model": ApiError}},
    )
    app.add_middleware(BodyLimit, max_body=ctx.max_body)
    bearer = HTTPBearer(auto_error=False)

    def claims_for(*roles: Role) -> Callable[..., Claims]:
        def dependency(
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        ) -> Claims:
            if credentials is None or credentials.scheme.lower() != "bearer":
                raise TokenInvalid("send the cloud-issued token as 'Authorization: Bearer <token>'")
            return verify(
                credentials.credentials,
                key=ctx.cloud_signing_key,
                now=ctx.now(),
                revoked=ctx.revoked(),
                roles=roles or tuple(Role),
            )

        return dependency

    @app.exception_handler(TokenError)
    async def token_error(_request: Request, exc: TokenError) -> JSONResponse:
        code = type(exc).__name__
        return JSONResponse(
            {"error": code, "message": str(exc)},
            status_code=exc.status,
            headers={"WWW-Authenticate": "Bearer"} if exc.status == 401 else None,  # noqa: PLR2004 - HTTP
        )

    @app.get("/api/v1/hub", summary="The hub's identity, clock and capacity")
    def hub_info(claims: Annotated[Claims, Depends(claims_for())]) -> HubInfo:
        status = ctx.status()
        return HubInfo(
            hub_id=ctx.hub_id,
            api_version=API_VERSION,
            hub_time=ctx.now(),
            agent_id=claims.agent_id,
            role=claims.role,
            backlog=status.backlog,
            at_capacity=status.at_capacity,
            capacity_hours_left=status.capacity_hours_left,
        )

    return app


ASGIApp = Callable[
    [
        dict[str, Any],
        Callable[[], Awaitable[dict[str, Any]]],
        Callable[[dict[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]


class BodyLimit:
    """Refuse request bodies over `max_body` bytes with 413, before the application reads them.

    Checks Content-Length up front, and counts the bytes of bodies sent without one.
    """

    def __init__(self, app: ASGIApp, *, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(  # noqa: D102 - the ASGI interface
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[dict[str, Any]]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await _too_large(send, self.max_body)
            return
        seen = 0
        started = False

        async def counting_receive() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _too_large(send, self.max_body)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Callable[[dict[str, Any]], Awaitable[None]], limit: int) -> None:
    body = (
        b'{"error":"TooLarge","message":"request body over '
        + str(limit).encode()
        + b' bytes: send fewer records per request"}'
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
