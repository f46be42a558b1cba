"""The phones' API application (composition happens in the daemon; nothing is built at import).

Every route is under /api/v1 and needs a token from the cloud (wire.tokens) in
`Authorization: Bearer ...`; errors are JSON `{"error": <code>, "message": <reason>}` from one
handler, never a bare 500 for bad input. Request bodies are capped before they are read.

Annotations are evaluated eagerly here (no `from __future__ import annotations`): FastAPI reads
the dependencies' `Annotated[...]` types at run time, including ones built in `create_app`.
"""

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from hub.api.models import ApiError
from hub.api.routes import add_routes
from hub.buffer.values import Encounter, SyncResult
from hub.records.merge import Decision, Outcome, check
from wire.items import MedicalRecord, Reading, TriageResult
from wire.plans import Plan
from wire.tokens import Claims, Role, TokenError, TokenInvalid, verify

API_VERSION = "1"
MAX_BODY = 8 * 1024 * 1024  # a bulk-sync of 1,000 records fits with room to spare


@dataclass(frozen=True, slots=True)
class HubStatus:
    """What `GET /api/v1/hub` reports beyond the identity."""

    backlog: int
    at_capacity: bool
    capacity_hours_left: float | None


SyncRecords = Callable[[list[MedicalRecord], datetime], Awaitable[list[SyncResult]]]
MAX_RECORDS = 1000


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """One stored version of a medical record and whether it is flagged as a conflict."""

    record: MedicalRecord
    conflict: bool


RecordVersions = Callable[[UUID], Sequence[StoredRecord]]
"""Every stored version of a record id, latest revision first; empty when unknown."""
StartEncounter = Callable[..., Awaitable[Encounter]]
"""`Buffer.start_encounter(device_address, patient_id, *, started_at, ended_at, opened_by)`."""
EndEncounter = Callable[..., Awaitable[Encounter]]
"""`Buffer.end_encounter(encounter_id, *, ended_at, by)`: `by` limits it to that agent's."""
ReadingsForPatient = Callable[..., list[Reading]]
"""`Buffer.readings_for_patient(patient_id, *, since, limit)`: received after `since`
(exclusive; None: all), oldest received first, ties in insertion order."""
TriageForReadings = Callable[[list[UUID]], Mapping[UUID, list[TriageResult]]]
"""The triage results computed from each of these readings (absent ids: none yet)."""
RecentTriage = Callable[..., list[TriageResult]]
"""`Buffer.recent_triage(*, limit, min_band, patient_id)`: newest first."""


@dataclass(frozen=True, slots=True)
class ApiContext:
    """What the API needs from the hub, handed in by the composition root."""

    hub_id: str
    cloud_signing_key: Ed25519PublicKey
    revoked: Callable[[], Collection[str]]
    status: Callable[[], HubStatus]
    at_capacity: Callable[[], bool] | None = None
    """The cheap check bulk-sync makes on every request (`Buffer.at_capacity`, a counter);
    None: `status().at_capacity`. `status()` scans the backlog: for `GET /api/v1/hub` only."""
    sync_records: SyncRecords | None = None
    """Stores records durably and answers per record (`Buffer.sync_records`)."""
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    max_body: int = MAX_BODY
    record_versions: RecordVersions | None = None
    plans: Callable[[], list[Plan]] | None = None
    """The cached plans (`Buffer.plans`)."""
    plans_version: Callable[[], int | None] | None = None
    start_encounter: StartEncounter | None = None
    end_encounter: EndEncounter | None = None
    readings_for_patient: ReadingsForPatient | None = None
    triage_for_readings: TriageForReadings | None = None
    recent_triage: RecentTriage | None = None


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


class BulkSyncRequest(BaseModel):
    """Up to 1,000 records; each is checked on its own (one bad record never fails the others)."""

    records: list[dict[str, Any]] = Field(max_length=MAX_RECORDS)


class RecordResult(BaseModel):
    """The answer for one record, in the order sent."""

    id: str | None
    revision: int | None
    outcome: Outcome
    reason: str | None = None
    stored: dict[str, Any] | None = None
    """On a conflict: the version the hub kept (both are stored and flagged for review)."""


class BulkSyncResponse(BaseModel):
    """One result per record sent, in the same order; all durable when this is returned."""

    results: list[RecordResult]


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

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in err.get("loc", ()))
        return JSONResponse(
            {"error": "InvalidRequest", "message": f"{where}: {err.get('msg')}"}, status_code=422
        )

    @app.post(
        "/api/v1/medical-records/bulk-sync",
        summary="Store up to 1,000 records; answers per record, durable before it answers",
        responses={507: {"model": ApiError}},
    )
    async def bulk_sync(
        request: BulkSyncRequest,
        claims: Annotated[Claims, Depends(claims_for(Role.AGENT, Role.SUPERVISOR))],
    ) -> BulkSyncResponse:
        return await _bulk_sync(ctx, request, claims)

    @app.exception_handler(HubFull)
    async def hub_full(_request: Request, exc: HubFull) -> JSONResponse:
        return JSONResponse({"error": "HubFull", "message": str(exc)}, status_code=507)

    @app.exception_handler(HubUnavailable)
    async def unavailable(_request: Request, exc: HubUnavailable) -> JSONResponse:
        return JSONResponse({"error": "Unavailable", "message": str(exc)}, status_code=503)

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

    add_routes(app, ctx, claims_for)
    return app


async def _bulk_sync(ctx: ApiContext, request: BulkSyncRequest, claims: Claims) -> BulkSyncResponse:
    """Check every record, store the valid ones in one durable write, answer in order."""
    if ctx.sync_records is None:
        raise HubUnavailable("this hub does not take records")
    full = ctx.at_capacity() if ctx.at_capacity is not None else ctx.status().at_capacity
    if full:
        raise HubFull("the hub's storage is full: keep the records on the phone and retry later")
    checked: list[MedicalRecord | Decision] = []
    for raw in request.records:
        item = check(raw)
        if (
            isinstance(item, MedicalRecord)
            and claims.role is Role.AGENT
            and item.agent_id != claims.agent_id
        ):
            item = Decision(Outcome.REJECTED, reason="agent_id is not the token's agent")
        checked.append(item)
    valid = [c for c in checked if isinstance(c, MedicalRecord)]
    stored = iter(await ctx.sync_records(valid, ctx.now()) if valid else [])
    results = []
    for raw, item in zip(request.records, checked, strict=True):
        if isinstance(item, MedicalRecord):
            done = next(stored)
            kept = done.stored.model_dump(mode="json") if done.stored else None
            results.append(
                RecordResult(
                    id=str(item.id), revision=item.revision, outcome=done.outcome, stored=kept
                )
            )
        else:
            rid, rev = raw.get("id"), raw.get("revision")
            results.append(
                RecordResult(
                    id=rid if isinstance(rid, str) else None,
                    revision=rev if isinstance(rev, int) else None,
                    outcome=Outcome.REJECTED,
                    reason=item.reason,
                )
            )
    return BulkSyncResponse(results=results)


ASGIApp = Callable[
    [
        dict[str, Any],
        Callable[[], Awaitable[dict[str, Any]]],
        Callable[[dict[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]


LARGE_BODY = 64 * 1024
MAX_LARGE_AT_ONCE = 4


class BodyLimit:
    """Refuse request bodies over `max_body` bytes with 413, before the application reads them.

    Checks Content-Length up front, and counts the bytes of bodies sent without one. Bodies over
    `large` bytes (or of unknown length) are read `max_large` at a time: twenty phones syncing
    1,000 records at once would otherwise hold twenty 8 MiB bodies and their parsed records in
    memory together. The others wait unread (the server stops reading their sockets).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int,
        large: int = LARGE_BODY,
        max_large: int = MAX_LARGE_AT_ONCE,
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.large = large
        self._large_slots = asyncio.Semaphore(max_large)

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

        is_large = declared is None or int(declared) > self.large
        try:
            if is_large and scope.get("method") in {"POST", "PUT", "PATCH"}:
                async with self._large_slots:
                    await self.app(scope, counting_receive, tracking_send)
            else:
                await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _too_large(send, self.max_body)


class HubFull(Exception):
    """The buffer's unsent data is at its cap."""


class HubUnavailable(Exception):
    """The hub cannot serve this now."""


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
