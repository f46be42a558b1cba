"""`tecsa-phone`: the reference phone client on the command line; its --help documents it."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import structlog
import typer

from phone.client import HubClient
from phone.discovery import HubAd, find_hub, list_hubs
from phone.errors import HubNotFound, PhoneError, PinMismatch, QueueError, TokenRefused
from phone.queue import Queue, State, new_record
from phone.sync import SyncPolicy, SyncReport, sync_queue

DEFAULT_QUEUE = Path.home() / ".local/share/tecsa-phone/queue.sqlite3"
EXIT_ERROR, EXIT_TOKEN, EXIT_NO_HUB, EXIT_PENDING, EXIT_PIN = 1, 3, 4, 5, 6

app = typer.Typer(
    name="tecsa-phone",
    help=(
        "The reference phone client of TecsaS3: what a health agent's app does to get visit "
        "records to the health post's hub, written as a command line.\n\n"
        "Records are kept in a local queue (an SQLite file, --queue) from the moment they are "
        "made. `sync` finds the hub by zeroconf, checks that its TLS certificate is the one it "
        "advertises, and sends the pending records; each record is marked synced only when the "
        "hub answered for it. Run `sync` as often as you like: nothing is sent twice to no "
        "purpose and nothing is lost.\n\n"
        "Typical day: `tecsa-phone record --patient pat-42 --type household_visit --payload "
        "'{\"children_under_5\": 2}'` at each visit, then `tecsa-phone sync` at the health post."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

QueueOption = Annotated[
    Path,
    typer.Option(
        "--queue",
        "-q",
        envvar="TECSA_PHONE_QUEUE",
        help="The phone's queue file (created on first use).",
    ),
]
InterfacesOption = Annotated[
    list[str] | None,
    typer.Option(
        "--interface",
        "-i",
        envvar="TECSA_PHONE_INTERFACES",
        help="IPv4 address to browse for hubs on (repeat for several). Default 127.0.0.1; on a "
        "real phone, the Wi-Fi address.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
TokenOption = Annotated[
    str | None,
    typer.Option(
        envvar="TECSA_PHONE_TOKEN",
        help="The token the cloud issued to the agent (or TECSA_PHONE_TOKEN).",
    ),
]
HubIdOption = Annotated[
    str | None, typer.Option(help="Talk only to this hub (default: the first one seen).")
]
TimeoutOption = Annotated[float, typer.Option(help="Seconds to look for a hub.")]
VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="Log what happens (JSON lines on stderr).")
]


@app.callback()
def _options(verbose: VerboseOption = False) -> None:
    """Options for every command."""
    _logging(verbose)


@app.command("record")
def record_command(
    patient: Annotated[str, typer.Option(help="The patient's id, e.g. pat-42.")],
    type_: Annotated[
        str,
        typer.Option(
            "--type",
            help="The record type: lower case letters, digits and _, e.g. household_visit.",
        ),
    ],
    payload: Annotated[
        str, typer.Option(help="The record's content as a JSON object, e.g. '{\"temp_c\": 38.2}'.")
    ],
    queue_path: QueueOption = DEFAULT_QUEUE,
    agent: Annotated[
        str | None,
        typer.Option(
            envvar="TECSA_PHONE_AGENT",
            help="The agent's id. Default: the one in the token (--token / TECSA_PHONE_TOKEN).",
        ),
    ] = None,
    token: Annotated[
        str | None, typer.Option(envvar="TECSA_PHONE_TOKEN", help="The agent's token.")
    ] = None,
    revise: Annotated[
        str | None,
        typer.Option(help="Make a new revision of this record id instead of a new record."),
    ] = None,
) -> None:
    """Add a visit record to the queue (durable when this returns); prints its id and revision."""
    try:
        content = json.loads(payload)
    except ValueError as exc:
        _fail(f"--payload is not JSON: {exc}")
    if not isinstance(content, dict):
        _fail("--payload must be a JSON object, e.g. '{\"temp_c\": 38.2}'")
    agent_id = agent or (_token_agent(token) if token else None)
    if agent_id is None:
        _fail("give --agent, or the agent's token with --token / TECSA_PHONE_TOKEN")
    now = datetime.now(UTC)
    try:
        with Queue.open(queue_path) as queue:
            revision = queue.next_revision(revise) if revise else 1
            rec = new_record(
                patient_id=patient,
                agent_id=agent_id,
                type_=type_,
                payload=content,
                now=now,
                rand=os.urandom(10),
                record_id=revise,
                revision=revision,
            )
            queued = queue.add(rec, now=now)
    except QueueError as exc:
        _fail(str(exc))
    print(f"queued {queued.id} revision {queued.revision}")


@app.command("sync")
def sync_command(
    queue_path: QueueOption = DEFAULT_QUEUE,
    token: TokenOption = None,
    interfaces: InterfacesOption = None,
    hub_id: HubIdOption = None,
    timeout: TimeoutOption = 10.0,
    attempts: Annotated[
        int, typer.Option(min=1, help="Tries per request on network errors, 5xx and 507.")
    ] = 6,
    as_json: JsonOption = False,
) -> None:
    """Find the hub, send every pending record, print how many got each answer.

    Exit status: 0 all answered; 3 the token was refused (get a new one from the cloud);
    4 no hub found; 5 stopped with records still pending (network, hub full: try later);
    6 the hub's certificate is not the advertised one (nothing was sent; report it).
    """
    if not token:
        _fail("give the agent's token with --token or TECSA_PHONE_TOKEN")
    with Queue.open(queue_path) as queue:
        hub = _found_hub(interfaces, hub_id, timeout)
        with HubClient(hub.host, hub.port, fingerprint=hub.fingerprint, token=token) as client:
            report = sync_queue(
                queue, client, hub_id=hub.hub_id, policy=SyncPolicy(attempts=attempts)
            )
        counts = queue.counts()
    _print_report(report, counts, as_json=as_json)
    if report.error is not None:
        print(f"error: {report.error}", file=sys.stderr)
        raise typer.Exit(_exit_code(report.error))


@app.command("triage")
def triage_command(
    patient_id: Annotated[str, typer.Argument(help="The patient, e.g. pat-42.")],
    token: TokenOption = None,
    interfaces: InterfacesOption = None,
    hub_id: HubIdOption = None,
    timeout: TimeoutOption = 10.0,
    limit: Annotated[int, typer.Option(min=1, max=200, help="Results to show.")] = 5,
    min_band: Annotated[
        str | None,
        typer.Option(help="Only this band and higher ones: low, low_medium, medium, high."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show the hub's latest triage of a patient, newest first (after `sync`, a record's too).

    The hub triages the agent's observations when a record reaches it, with the patient's
    readings when there are some; "incomplete" means a NEWS2 parameter was missing, so the
    band is a lower bound. Exit status: 3 the token was refused; 4 no hub found; 6 the hub's
    certificate is not the advertised one.
    """
    if not token:
        _fail("give the agent's token with --token or TECSA_PHONE_TOKEN")
    hub = _found_hub(interfaces, hub_id, timeout)
    try:
        with HubClient(hub.host, hub.port, fingerprint=hub.fingerprint, token=token) as client:
            results = client.triage(patient_id, limit=limit, min_band=min_band)
    except PhoneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = _exit_code(exc)  # nothing is pending here: any other error is a plain failure
        raise typer.Exit(EXIT_ERROR if code == EXIT_PENDING else code) from None
    if as_json:
        print(json.dumps({"hub_id": hub.hub_id, "patient_id": patient_id, "results": results}))
        return
    if not results:
        print(f"no triage of {patient_id} on hub {hub.hub_id} yet")
    for r in results:
        complete = "" if r.get("complete") else "  (incomplete: a lower bound)"
        print(
            f"{r.get('at') or r.get('computed_at')}  {str(r.get('band')).upper():<10}"
            f"  NEWS2 {r.get('news2_score')}{complete}  model {r.get('model_version')}"
        )


@app.command("status")
def status_command(queue_path: QueueOption = DEFAULT_QUEUE, as_json: JsonOption = False) -> None:
    """How many records are pending, synced, in conflict or rejected; and why for the last two."""
    with Queue.open(queue_path) as queue:
        counts = queue.counts()
        attention = queue.records(state=State.CONFLICT) + queue.records(state=State.REJECTED)
    if as_json:
        print(
            json.dumps(
                {
                    "counts": {s.value: n for s, n in counts.items()},
                    "attention": [
                        {"id": q.id, "revision": q.revision, "state": q.state, "answer": q.answer}
                        for q in attention
                    ],
                }
            )
        )
        return
    print("  ".join(f"{s.value} {n}" for s, n in counts.items()))
    for q in attention:
        reason = (q.answer or {}).get("reason") or "the hub kept another version: review it"
        print(f"{q.state.value:<9} {q.id} rev {q.revision}: {reason}")


@app.command("hubs")
def hubs_command(
    interfaces: InterfacesOption = None,
    seconds: Annotated[float, typer.Option(help="Seconds to listen.")] = 3.0,
    as_json: JsonOption = False,
) -> None:
    """List the hubs advertised on the network (zeroconf), with the fingerprint to pin."""
    hubs = asyncio.run(list_hubs(interfaces=interfaces or ["127.0.0.1"], seconds=seconds))
    if as_json:
        print(json.dumps([_hub_json(h) for h in hubs]))
        return
    if not hubs:
        print(f"no hub seen in {seconds:g} s")
    for h in hubs:
        print(f"{h.hub_id}  https://{h.host}:{h.port}  api {h.api}  tls {h.fingerprint}")


def main() -> None:
    """Entry point of the `tecsa-phone` console script."""
    app()


def _print_report(report: SyncReport, counts: dict[State, int], *, as_json: bool) -> None:
    answered = {s.value: n for s, n in report.answered.items() if s is not State.PENDING}
    if as_json:
        print(
            json.dumps(
                {
                    "hub_id": report.hub_id,
                    "answered": answered,
                    "requests": report.requests,
                    "retries": report.retries,
                    "pending_left": report.pending_left,
                    "queue": {s.value: n for s, n in counts.items()},
                    "error": str(report.error) if report.error else None,
                }
            )
        )
        return
    print(f"hub {report.hub_id}: " + "  ".join(f"{k} {v}" for k, v in answered.items()))
    print(
        f"pending left {report.pending_left}  "
        f"(requests {report.requests}, retries {report.retries})"
    )


def _exit_code(error: PhoneError) -> int:
    if isinstance(error, TokenRefused):
        return EXIT_TOKEN
    if isinstance(error, PinMismatch):
        return EXIT_PIN
    return EXIT_PENDING


def _hub_json(h: HubAd) -> dict[str, Any]:
    return {"hub_id": h.hub_id, "host": h.host, "port": h.port, "api": h.api, "tls": h.fingerprint}


def _token_agent(token: str) -> str | None:
    """The agent id a token names (read, not verified: only the hub can verify it)."""
    try:
        part = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        return None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    return sub if isinstance(sub, str) else None


def _logging(verbose: bool) -> None:
    level = logging.INFO if verbose else logging.WARNING
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def _found_hub(interfaces: list[str] | None, hub_id: str | None, timeout: float) -> HubAd:
    """The hub to talk to (zeroconf), or exit 4 with the reason."""
    try:
        hub = asyncio.run(
            find_hub(interfaces=interfaces or ["127.0.0.1"], hub_id=hub_id, within_s=timeout)
        )
    except OSError as exc:
        print(f"error: cannot browse for hubs: {exc}", file=sys.stderr)
        raise typer.Exit(EXIT_NO_HUB) from None
    if hub is None:
        print(f"error: {HubNotFound(f'no hub found in {timeout:g} s')}", file=sys.stderr)
        raise typer.Exit(EXIT_NO_HUB)
    return hub


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(EXIT_ERROR)
