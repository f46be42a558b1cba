"""`tecsa-cloud records ...`: look at the medical records hubs delivered, and their conflicts.

Read-only; each command opens one connection and exits 2 with a one-line message on stderr when
something is wrong (as `tecsa-cloud hubs ...`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from uuid import UUID

import typer

from cloud.db.cli import DatabaseUrl, cli_errors, database_url
from cloud.db.connection import connect

records_app = typer.Typer(
    help=(
        "Medical records delivered by hubs: every revision of one record, and the conflicting "
        "versions (same id and revision, other content) waiting for a person's review."
    ),
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="One JSON document, for scripts.")]

_RECORD_COLUMNS = (
    "id, revision, content_hash, updated_at, patient_id, agent_id, type, payload, flags,"
    " hub_id, batch_id"
)


@records_app.command("show")
def records_show(
    record_id: Annotated[str, typer.Argument(help="The record's UUID.", show_default=False)],
    as_json: JsonFlag = False,
    database_url_: DatabaseUrl = None,
) -> None:
    """Every stored revision of a record, newest first, with the conflicting versions kept aside.

    Example: tecsa-cloud records show 019ac990-0000-7000-8000-00000000000a --json
    """
    try:
        rid = UUID(record_id)
    except ValueError:
        typer.echo(f"error: {record_id!r} is not a UUID", err=True)
        raise typer.Exit(2) from None
    with cli_errors(), connect(database_url(database_url_)) as conn:
        revisions = conn.execute(
            f"SELECT {_RECORD_COLUMNS}, has_conflict FROM medical_records"  # noqa: S608 - constant columns
            " WHERE id = %s ORDER BY revision DESC",
            (rid,),
        ).fetchall()
        conflicts = conn.execute(
            f"SELECT {_RECORD_COLUMNS}, detected_at, resolved_at FROM record_conflicts"  # noqa: S608 - constant columns
            " WHERE id = %s ORDER BY revision DESC, detected_at",
            (rid,),
        ).fetchall()
    if not revisions:
        typer.echo(f"error: no record {rid} in the database", err=True)
        raise typer.Exit(2)
    shown = [_record(r[:11]) | {"has_conflict": r[11]} for r in revisions]
    kept = [_conflict(r) for r in conflicts]
    if as_json:
        doc = {"id": str(rid), "revisions": shown, "conflicts": kept}
        typer.echo(json.dumps(doc, indent=2, default=str))
        return
    for rev in shown:
        mark = "  CONFLICT (see below)" if rev["has_conflict"] else ""
        typer.echo(
            f"revision {rev['revision']}  {rev['type']}  patient {rev['patient_id']}  "
            f"agent {rev['agent_id']}  updated {rev['updated_at']}  hub {rev['hub_id']}{mark}"
        )
        typer.echo(f"  {json.dumps(rev['payload'], sort_keys=True)}")
    for c in kept:
        state = "resolved" if c["resolved_at"] else "unresolved"
        typer.echo(
            f"conflicting version of revision {c['revision']} ({state}) from hub {c['hub_id']}, "
            f"hash {c['content_hash']}"
        )
        typer.echo(f"  {json.dumps(c['payload'], sort_keys=True)}")


@records_app.command("conflicts")
def records_conflicts(
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 100,
    include_resolved: Annotated[
        bool, typer.Option("--all", help="Also the conflicts already resolved.")
    ] = False,
    as_json: JsonFlag = False,
    database_url_: DatabaseUrl = None,
) -> None:
    """The conflicting record versions waiting for review, newest first.

    A conflict is a version with the same id and revision as a stored one but other content
    (two phones edited the same record offline). Both are kept; `records show ID` shows both.

    Example: tecsa-cloud records conflicts --limit 20
    """
    with cli_errors(), connect(database_url(database_url_)) as conn:
        rows = conn.execute(
            f"SELECT {_RECORD_COLUMNS}, detected_at, resolved_at FROM record_conflicts"  # noqa: S608 - constant columns
            " WHERE %s OR resolved_at IS NULL ORDER BY detected_at DESC LIMIT %s",
            (include_resolved, limit),
        ).fetchall()
    found = [_conflict(r) for r in rows]
    if as_json:
        typer.echo(json.dumps(found, indent=2, default=str))
        return
    if not found:
        typer.echo("no conflicts waiting for review")
        return
    for c in found:
        typer.echo(
            f"{c['id']}  revision {c['revision']}  patient {c['patient_id']}  agent "
            f"{c['agent_id']}  hub {c['hub_id']}  detected {c['detected_at']}"
        )


def _record(row: tuple[Any, ...]) -> dict[str, Any]:
    rid, revision, chash, updated, patient, agent, kind, payload, flags, hub, batch = row
    return {
        "id": str(rid),
        "revision": revision,
        "content_hash": chash,
        "updated_at": updated.isoformat(),
        "patient_id": patient,
        "agent_id": agent,
        "type": kind,
        "payload": payload,
        "flags": list(flags),
        "hub_id": hub,
        "batch_id": str(batch),
    }


def _conflict(row: tuple[Any, ...]) -> dict[str, Any]:
    detected, resolved = row[11], row[12]
    return _record(row[:11]) | {
        "detected_at": detected.isoformat(),
        "resolved_at": resolved.isoformat() if resolved is not None else None,
    }
