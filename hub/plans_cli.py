"""`tecsa-hub plans …`: load and look at the plans the hub serves to phones (GET /api/v1/plans/).

Plans normally arrive from the cloud on `down/cmd`; `plans import` loads a snapshot file while
the hub is offline. An import is checked plan by plan first and written in one transaction: all
of it, or nothing (the plans held stay as they were).
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path  # noqa: TC003 - typer reads the annotations at run time
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hub.buffer import plans as plan_rows
from hub.buffer.cli import DEFAULT_DB, DbOption, JsonOption
from hub.buffer.config import BufferConfig
from hub.buffer.errors import HubBufferError, translate
from hub.buffer.schema import open_reader, open_writer
from wire.plans import MAX_PLANS, Plan

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")

MAX_FILE = 16 * 1024 * 1024  # a snapshot of MAX_PLANS plans with their payloads fits easily
MAX_SHOWN = 20  # errors listed before "... and N more"

plans_app = typer.Typer(name="plans", no_args_is_help=True, add_completion=False)


class PlanFileError(ValueError):
    """The file is not a plans snapshot; the message lists every problem found."""


@plans_app.callback()
def plans_group() -> None:
    """The plans (campaigns, visits) this hub serves to the agents' phones.

    The cloud sends them on down/cmd; `plans import` loads a file meanwhile.
    """


@plans_app.command("import")
def import_command(
    file: Annotated[
        Path,
        typer.Argument(
            help='JSON: {"version": N, "plans": [...]} or a list of plans.',
            exists=True,
            dir_okay=False,
        ),
    ],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Replace the hub's plans with the snapshot in FILE: every plan checked, all or nothing.

    Each plan is {"id", "title", "kind": "campaign"|"visit", "starts_at", "ends_at"?,
    "agent_ids"?: [...] (empty: every agent), "payload"?: {...}}; times with a UTC offset.
    Without a "version" the import gets the held version + 1. A file older than the plans held
    (lower version) is refused. Safe while the daemon runs.

    Example: tecsa-hub plans import campaign-december.json --db ./buffer.sqlite3
    """
    try:
        if file.stat().st_size > MAX_FILE:
            _fail(f"{file} is over {MAX_FILE // (1024 * 1024)} MiB: not a plans snapshot")
        version, plans = parse_plan_file(file.read_bytes())
    except PlanFileError as exc:
        _fail(f"{file}: nothing imported:\n{exc}")
    except OSError as exc:
        _fail(f"cannot read {file}: {exc}")
    info = _write(db, plans, version)
    typer.echo(f"imported {info.count} plans from {file} as version {info.version}")


@plans_app.command("list")
def list_command(db: DbOption = DEFAULT_DB, as_json: JsonOption = False) -> None:
    """Show the plans held, their version and where they came from (cloud or import).

    Example: tecsa-hub plans list --db ./buffer.sqlite3 --json
    """
    info, plans = _with_reader(db, lambda c: (plan_rows.plans_info(c), plan_rows.plans(c)))
    if as_json:
        data = {
            "version": info.version if info else None,
            "source": info.source if info else None,
            "replaced_at": info.replaced_at.isoformat() if info else None,
            "plans": [p.model_dump(mode="json") for p in plans],
        }
        print(json.dumps(data, indent=2))  # noqa: T201 - the command's output
        return
    if info is None:
        Console().print(
            "No plans yet: they arrive from the cloud, or use `tecsa-hub plans import`."
        )
        return
    table = Table(
        title=f"plans version {info.version} ({info.source}, {info.replaced_at:%Y-%m-%d %H:%M} UTC)"
    )
    for column in ("id", "kind", "title", "starts", "ends", "agents"):
        table.add_column(column)
    for p in plans:
        table.add_row(
            escape(p.id),
            p.kind.value,
            escape(p.title),
            p.starts_at.isoformat(timespec="minutes"),
            p.ends_at.isoformat(timespec="minutes") if p.ends_at else "-",
            ", ".join(p.agent_ids) if p.agent_ids else "all",
        )
    Console().print(table)


def parse_plan_file(raw: bytes) -> tuple[int | None, list[Plan]]:
    """(version or None, plans) from a snapshot file; `PlanFileError` naming every bad plan."""
    try:
        data: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PlanFileError(f"not JSON: {exc}") from None
    version, data = _unwrap(data)
    if not isinstance(data, list):
        raise PlanFileError("plans: expected a list of plans")
    if len(data) > MAX_PLANS:
        raise PlanFileError(f"plans: {len(data)} plans, at most {MAX_PLANS} in one snapshot")
    plans: list[Plan] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for n, item in enumerate(data, start=1):
        name = _plan_name(n, item)
        try:
            plan = Plan.model_validate(item)
        except ValidationError as exc:
            problems += [f"{name}: {_where(e['loc'])}{e['msg']}" for e in exc.errors()]
            continue
        if plan.id in seen:
            problems.append(f"{name}: id also used by plan #{seen[plan.id]}")
        seen.setdefault(plan.id, n)
        plans.append(plan)
    if problems:
        shown = problems[:MAX_SHOWN]
        more = len(problems) - len(shown)
        raise PlanFileError("\n".join(shown) + (f"\n... and {more} more" if more else ""))
    return version, plans


def _unwrap(data: object) -> tuple[int | None, object]:
    """(version, plans) of a snapshot object; a bare list has no version."""
    if not isinstance(data, dict):
        return None, data
    if set(data) - {"version", "plans"} or "plans" not in data:
        raise PlanFileError('expected {"version": N, "plans": [...]} or a list of plans')
    version = data.get("version")
    if version is not None and (
        not isinstance(version, int) or isinstance(version, bool) or not 0 <= version < 2**63
    ):
        raise PlanFileError("version: an integer from 0")
    return version, data["plans"]


def _plan_name(n: int, item: object) -> str:
    pid = item.get("id") if isinstance(item, dict) else None
    return f"plan #{n} ({pid!r})" if isinstance(pid, str) and len(pid) <= 128 else f"plan #{n}"  # noqa: PLR2004 - Ident


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) + ": " if loc else ""


def _write(db: Path, plans: list[Plan], version: int | None) -> plan_rows.PlansInfo:
    if not db.exists():
        _fail(f"{db} does not exist: give the daemon's buffer file with --db")
    try:
        conn = open_writer(BufferConfig(path=db, busy_timeout=timedelta(seconds=10)))
    except HubBufferError as exc:
        _fail(str(exc))
    with closing(conn):
        try:
            conn.execute("BEGIN IMMEDIATE")
            held = plan_rows.plans_info(conn)
            if version is None:
                version = held.version + 1 if held else 1
            elif held is not None and version < held.version:
                conn.execute("ROLLBACK")
                _fail(
                    f"the hub holds plans version {held.version}, newer than the file's {version}"
                )
            info, _ = plan_rows.replace_plans(
                plans, version=version, source="import", at=datetime.now(UTC)
            )(conn)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            _fail(str(translate(exc, f"writing plans to {db}")))
    return info


def _with_reader(db: Path, fn: Callable[[sqlite3.Connection], T]) -> T:
    try:
        with closing(open_reader(db)) as conn:
            return fn(conn)
    except sqlite3.Error as exc:
        _fail(str(translate(exc, f"reading {db}")))
    except HubBufferError as exc:
        _fail(str(exc))


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)  # plain: a long list of problems stays unwrapped
    raise typer.Exit(code=1)
