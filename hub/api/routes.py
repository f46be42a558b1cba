"""Records by id, plans, encounters and readings: the phones' API routes beyond bulk-sync.

Roles (docs/phone-api.md): agents and supervisors read records, plans and readings and bind
devices; an agent sees only its own records (404 for others', so ids do not leak) and the plans
meant for it; technicians maintain the hub and get 403 here. Inputs are typed and bounded, so
path and query tricks (`../`, SQL text, NUL bytes, huge numbers) end as JSON 404/422.

Annotations are evaluated eagerly (no `from __future__ import annotations`), for FastAPI.
"""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, NoReturn
from uuid import UUID

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from hub.api.cursor import BadCursor, decode_cursor, next_cursor
from hub.api.models import (
    DEFAULT_READINGS,
    DEFAULT_TRIAGE,
    MAX_READINGS,
    MAX_TRIAGE,
    ApiError,
    EncounterOut,
    NewEncounter,
    PlansOut,
    ReadingOut,
    ReadingsOut,
    RecordOut,
    RecordVersionOut,
    TriageOut,
)
from hub.buffer.errors import (
    EncounterAlreadyEnded,
    EncounterOverlap,
    HubBufferError,
    InvalidEncounter,
    NotYourEncounter,
    UnknownEncounter,
)
from hub.buffer.values import Encounter
from wire.items import RiskBand
from wire.tokens import Claims, Role, RoleRefused

if TYPE_CHECKING:
    from hub.api.app import ApiContext

ClaimsFor = Callable[..., Callable[..., Claims]]
IDENT_PATTERN = r"^[\x21-\x7e]+$"


class NotFound(Exception):
    """Nothing with this id here (or not yours to see): 404."""


class Conflict(Exception):
    """The request clashes with the hub's state: 409."""


class Unsupported(Exception):
    """This hub was built without the part that answers this: 503."""


class Invalid(Exception):
    """Well-formed but not acceptable (an encounter ending before it starts): 422."""


ERRORS = {"model": ApiError}
HTTP_CODES = {404: "NotFound", 405: "MethodNotAllowed"}


def add_routes(app: FastAPI, ctx: "ApiContext", claims_for: ClaimsFor) -> None:
    """Add the records, plans, encounters and readings routes and their error handlers."""
    readers = claims_for(Role.AGENT, Role.SUPERVISOR)
    _add_error_handlers(app)
    _add_record_routes(app, ctx, readers)
    _add_encounter_routes(app, ctx, readers)
    _add_reading_routes(app, ctx, readers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Unknown paths and methods too: the same JSON shape as every other error.
        code = HTTP_CODES.get(exc.status_code, "HttpError")
        return JSONResponse(
            {"error": code, "message": str(exc.detail)},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(NotFound)
    async def not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"error": "NotFound", "message": str(exc)}, status_code=404)

    @app.exception_handler(Conflict)
    async def conflict(_request: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"error": "Conflict", "message": str(exc)}, status_code=409)

    @app.exception_handler(Unsupported)
    async def unsupported(_request: Request, exc: Unsupported) -> JSONResponse:
        return JSONResponse({"error": "Unavailable", "message": str(exc)}, status_code=503)

    @app.exception_handler(HubBufferError)
    async def buffer_error(_request: Request, exc: HubBufferError) -> JSONResponse:
        return JSONResponse(
            {"error": "Unavailable", "message": f"the hub's storage cannot answer now: {exc}"},
            status_code=503,
        )

    @app.exception_handler(Invalid)
    async def invalid(_request: Request, exc: Invalid) -> JSONResponse:
        return JSONResponse({"error": "InvalidRequest", "message": str(exc)}, status_code=422)

    @app.exception_handler(BadCursor)
    async def bad_cursor(_request: Request, exc: BadCursor) -> JSONResponse:
        return JSONResponse(
            {"error": "InvalidRequest", "message": f"query.cursor: {exc}"}, status_code=422
        )


def _add_record_routes(app: FastAPI, ctx: "ApiContext", readers: Callable[..., Claims]) -> None:
    @app.get(
        "/api/v1/medical-records/{record_id}",
        summary="Every stored version of a record, latest first, with conflict flags",
        responses={404: ERRORS, 503: ERRORS},
    )
    def get_record(record_id: UUID, claims: Annotated[Claims, Depends(readers)]) -> RecordOut:
        if ctx.record_versions is None:
            raise Unsupported("this hub does not keep records")
        versions = list(ctx.record_versions(record_id))
        mine = claims.role is not Role.AGENT or any(
            v.record.agent_id == claims.agent_id for v in versions
        )
        if not versions or not mine:
            raise NotFound(f"no record {record_id} on this hub")
        return RecordOut(
            id=record_id,
            versions=[RecordVersionOut(conflict=v.conflict, record=v.record) for v in versions],
        )

    @app.get(
        "/api/v1/plans/",
        summary="The plans cached on the hub (an agent gets the plans meant for it)",
        responses={503: ERRORS},
    )
    def get_plans(claims: Annotated[Claims, Depends(readers)]) -> PlansOut:
        if ctx.plans is None:
            raise Unsupported("this hub does not keep plans")
        plans = ctx.plans()
        if claims.role is Role.AGENT:
            plans = [p for p in plans if p.for_agent(claims.agent_id)]
        return PlansOut(version=ctx.plans_version() if ctx.plans_version else None, plans=plans)


def _add_encounter_routes(app: FastAPI, ctx: "ApiContext", readers: Callable[..., Claims]) -> None:
    @app.post(
        "/api/v1/encounters",
        status_code=201,
        summary="Bind a BLE device to a patient: its readings in the window get the patient",
        responses={409: ERRORS, 503: ERRORS},
    )
    async def post_encounter(
        body: NewEncounter, claims: Annotated[Claims, Depends(readers)]
    ) -> EncounterOut:
        if ctx.start_encounter is None:
            raise Unsupported("this hub does not bind devices")
        try:
            enc = await ctx.start_encounter(
                body.device_address,
                body.patient_id,
                started_at=body.started_at or ctx.now(),
                ended_at=body.ended_at,
                opened_by=claims.agent_id,
            )
        except EncounterOverlap as exc:
            raise Conflict(str(exc)) from exc
        except InvalidEncounter as exc:
            raise Invalid(f"body.ended_at: {exc}") from exc
        return _encounter_out(enc)

    @app.delete(
        "/api/v1/encounters/{encounter_id}",
        summary="End an open encounter now (the hub's clock)",
        responses={403: ERRORS, 404: ERRORS, 409: ERRORS, 503: ERRORS},
    )
    async def delete_encounter(
        encounter_id: UUID, claims: Annotated[Claims, Depends(readers)]
    ) -> EncounterOut:
        if ctx.end_encounter is None:
            raise Unsupported("this hub does not bind devices")
        by = claims.agent_id if claims.role is Role.AGENT else None  # supervisors end any
        try:
            enc = await ctx.end_encounter(encounter_id, ended_at=ctx.now(), by=by)
        except (NotYourEncounter, UnknownEncounter) as exc:
            _not_yours_or_unknown(encounter_id, exc)
        except EncounterAlreadyEnded as exc:
            raise Conflict(f"encounter {encounter_id} has ended already") from exc
        except InvalidEncounter as exc:
            raise Conflict(f"{exc} (it starts later than the hub's clock now)") from exc
        return _encounter_out(enc)


def _add_reading_routes(app: FastAPI, ctx: "ApiContext", readers: Callable[..., Claims]) -> None:
    @app.get(
        "/api/v1/readings",
        summary="A patient's readings, oldest received first, with triage when available",
        responses={503: ERRORS},
    )
    def get_readings(
        claims: Annotated[Claims, Depends(readers)],
        patient_id: Annotated[str, Query(min_length=1, max_length=128, pattern=IDENT_PATTERN)],
        since: Annotated[
            datetime | None, Query(description="Received after this time (with a UTC offset)")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_READINGS)] = DEFAULT_READINGS,
        cursor: Annotated[
            str | None, Query(max_length=200, description="The `next` of the previous page")
        ] = None,
    ) -> ReadingsOut:
        del claims
        if ctx.readings_for_patient is None:
            raise Unsupported("this hub does not keep readings by patient")
        if since is not None:
            since = _utc(since)
        after = decode_cursor(cursor) if cursor is not None else None
        start = since
        if after is not None and after.since > datetime.min.replace(tzinfo=UTC):
            # The buffer's `since` is exclusive; a cursor restarts AT its time (stored to the µs).
            start = after.since - timedelta(microseconds=1)
        elif after is not None:
            start = None
        skip = after.skip if after is not None else 0
        found = ctx.readings_for_patient(patient_id, since=start, limit=skip + limit + 1)[skip:]
        page, more = found[:limit], len(found) > limit
        triage = ctx.triage_for_readings([r.id for r in page]) if ctx.triage_for_readings else {}
        following = next_cursor([r.received_at for r in page], previous=after, more=more)
        return ReadingsOut(
            patient_id=patient_id,
            readings=[ReadingOut(reading=r, triage=triage.get(r.id, [])) for r in page],
            next=following.encode() if following is not None else None,
        )

    @app.get(
        "/api/v1/triage",
        summary="A patient's latest triage results, newest first (those of agents' records too)",
        responses={503: ERRORS},
    )
    def get_triage(
        claims: Annotated[Claims, Depends(readers)],
        patient_id: Annotated[str, Query(min_length=1, max_length=128, pattern=IDENT_PATTERN)],
        limit: Annotated[int, Query(ge=1, le=MAX_TRIAGE)] = DEFAULT_TRIAGE,
        min_band: Annotated[
            RiskBand | None, Query(description="Only results of this band or a higher one")
        ] = None,
    ) -> TriageOut:
        del claims
        if ctx.recent_triage is None:
            raise Unsupported("this hub does not triage")
        found = ctx.recent_triage(limit=limit, min_band=min_band, patient_id=patient_id)
        return TriageOut(patient_id=patient_id, results=found)


def _utc(since: datetime) -> datetime:
    if since.tzinfo is None:
        raise Invalid("query.since: give a UTC offset, e.g. 2026-11-28T08:00:00Z")
    try:
        return since.astimezone(UTC)
    except OverflowError:
        raise Invalid("query.since: out of range once converted to UTC") from None


def _not_yours_or_unknown(encounter_id: UUID, exc: Exception) -> NoReturn:
    """403 for another agent's encounter, 404 for one this hub does not know."""
    if isinstance(exc, NotYourEncounter):
        raise RoleRefused(str(exc)) from exc
    raise NotFound(f"no encounter {encounter_id} on this hub") from exc


def _encounter_out(enc: Encounter) -> EncounterOut:
    return EncounterOut(
        id=enc.id,
        device_address=enc.device_address,
        patient_id=enc.patient_id,
        started_at=enc.started_at,
        ended_at=enc.ended_at,
        opened_by=enc.opened_by,
    )
