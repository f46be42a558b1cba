"""The hub's handler of `down/cmd`: one command at a time, nothing in a command can harm the hub.

Order for each message: verify (signature, hub, expiry, schema: `wire.commands`) -> refuse an id
judged before (a redelivery or replay: ignored, idempotent) and a snapshot not newer than the
one in force (stale) -> apply durably -> record the outcome -> report. Every refusal is logged
with its reason and counted in `tecsa_hub_commands_total{kind,outcome}`; no exception leaves
`__call__`, so the uplink that calls it never stops because of a command.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeAlias

import structlog
from prometheus_client import CollectorRegistry, Counter

from hub.buffer.commands import CommandOutcome
from hub.buffer.errors import HubBufferError
from hub.errors import HubError
from wire.commands import CommandKind, verify_command
from wire.errors import WireError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from hub.buffer import Buffer
    from wire.commands import Command

log = structlog.get_logger(__name__)

KindHandler: TypeAlias = "Callable[[Command], Awaitable[None]]"
"""Applies one verified, new, current command of its kind durably; raises `CommandRefused` to
refuse it for good (recorded), any other exception to leave it unrecorded (a redelivery retries)."""

INVALID = "invalid"
"""Outcome label of a message that did not verify (never recorded: it may not be ours at all)."""
FAILED = "failed"
"""Outcome label of a command whose handler failed unexpectedly (not recorded: may be retried)."""


class CommandRefused(HubError):
    """A kind handler refuses a verified command for good; `reason` is logged and recorded."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Handled:
    """What became of one message on `down/cmd`."""

    outcome: str
    """A `CommandOutcome` value, or `invalid`/`failed`."""
    kind: str | None = None
    command_id: str | None = None
    reason: str | None = None


class RevokedTokens:
    """The revoked token ids the API checks on every request, kept in memory.

    Loaded from the buffer at start and refreshed by the handler right after a revocation list
    is committed, so a revoked token is refused from the very next request.
    """

    def __init__(self, buffer: Buffer, *, clock: Callable[[], datetime] | None = None) -> None:
        self._buffer = buffer
        self._clock = clock if clock is not None else _utc_now
        self._ids: frozenset[str] = frozenset()

    def refresh(self) -> frozenset[str]:
        """Re-read the list from the buffer; returns it."""
        self._ids = self._buffer.revoked_token_ids(now=self._clock())
        return self._ids

    def __call__(self) -> frozenset[str]:
        """The ids in force (what `ApiContext.revoked` returns)."""
        return self._ids


def plans_handler(buffer: Buffer) -> KindHandler:
    """The handler of `plans` commands: the snapshot replaces the hub's cached plans."""

    async def apply(command: Command) -> None:
        snapshot = command.plans()
        await buffer.replace_plans(snapshot.plans, version=snapshot.version, source="cloud")

    return apply


class CommandHandler:
    """Verifies and applies the cloud's commands; pass it as the uplink's `on_command`."""

    def __init__(
        self,
        *,
        hub_id: str,
        cloud_key: Ed25519PublicKey,
        buffer: Buffer,
        handlers: Mapping[CommandKind, KindHandler] | None = None,
        revoked: RevokedTokens | None = None,
        on_applied: Callable[[Command], None] | None = None,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._hub_id = hub_id
        self._cloud_key = cloud_key
        self._buffer = buffer
        self._handlers = dict(handlers or {})
        self._revoked = revoked
        self._clock = clock if clock is not None else _utc_now
        self.on_applied = on_applied
        """Called after each applied command (the daemon republishes the hub's status)."""
        self._lock = asyncio.Lock()
        self._seen: set[tuple[str, str]] = set()
        self.last_refused: Handled | None = None
        self.counts: dict[str, int] = {}
        """Outcomes since start, including `invalid` and `failed` (which are not recorded)."""
        self.commands = Counter(
            "tecsa_hub_commands",
            "Messages on down/cmd by kind and outcome (applied, duplicate, stale, refused, "
            "invalid, failed).",
            ["kind", "outcome"],
            registry=registry if registry is not None else CollectorRegistry(),
        )

    async def __call__(self, payload: bytes) -> None:
        """Handle one message's bytes (the uplink's `on_command`); never raises."""
        await self.handle(payload)

    async def handle(self, payload: bytes) -> Handled:
        """Handle one message's bytes and say what became of it; never raises."""
        async with self._lock:
            try:
                return await self._handle(payload)
            except Exception as exc:  # a bug must not end the uplink  # noqa: BLE001
                return self._done(Handled(FAILED, reason=f"handler bug: {exc!r}"))

    def status(self) -> dict[str, Any]:
        """What the hub reports in its retained up/status (`status_extra`)."""
        state = self._buffer.command_status()
        versions = {kind: v.version for kind, v in state.versions.items()}
        report: dict[str, Any] = {
            "revocations_version": versions.get(CommandKind.REVOCATIONS.value),
            "plans_version": versions.get(CommandKind.PLANS.value),
            "revoked_tokens": state.revoked_tokens,
            "outcomes": dict(sorted((state.outcomes | _unrecorded(self.counts)).items())),
        }
        if self.last_refused is not None:
            report["last_refused"] = {
                "outcome": self.last_refused.outcome,
                "kind": self.last_refused.kind,
                "id": self.last_refused.command_id,
                "reason": self.last_refused.reason,
            }
        return {"commands": report}

    # --- private ------------------------------------------------------------------------------

    async def _handle(self, payload: bytes) -> Handled:
        now = self._clock()
        try:
            command = verify_command(
                payload, cloud_key=self._cloud_key, hub_id=self._hub_id, now=now
            )
        except WireError as exc:
            return self._done(Handled(INVALID, reason=f"{type(exc).__name__}: {exc}"))
        kind, cid = command.kind.value, str(command.id)
        try:
            judged = self._buffer.judge_command(command)
            if judged is CommandOutcome.STALE:
                await self._buffer.record_command(
                    command, outcome=judged, reason="not newer", received_at=now
                )
            if judged is not None:
                return self._done(Handled(judged.value, kind, cid, _why(judged, command)))
            if command.kind is CommandKind.REVOCATIONS:
                outcome = await self._buffer.apply_revocations(command, received_at=now)
                if self._revoked is not None:
                    self._revoked.refresh()
                reason = None
            else:
                outcome, reason = await self._dispatch(command, now)
        except HubBufferError as exc:
            return self._done(Handled(FAILED, kind, cid, f"buffer: {exc}"))
        if outcome is CommandOutcome.APPLIED:
            await self._buffer.prune_commands(now=now)
            if self.on_applied is not None:
                self.on_applied(command)
        return self._done(Handled(outcome.value, kind, cid, reason or _why(outcome, command)))

    async def _dispatch(self, command: Command, now: datetime) -> tuple[CommandOutcome, str | None]:
        handler = self._handlers.get(command.kind)
        reason: str | None = None
        if handler is None:
            outcome, reason = CommandOutcome.REFUSED, f"no handler for kind {command.kind}"
        else:
            try:
                await handler(command)
                outcome = CommandOutcome.APPLIED
            except CommandRefused as exc:
                outcome, reason = CommandOutcome.REFUSED, exc.reason
        recorded = await self._buffer.record_command(
            command, outcome=outcome, reason=reason, received_at=now
        )
        return recorded, reason

    def _done(self, handled: Handled) -> Handled:
        self.counts[handled.outcome] = self.counts.get(handled.outcome, 0) + 1
        self.commands.labels(kind=handled.kind or "unknown", outcome=handled.outcome).inc()
        data = {"kind": handled.kind, "command_id": handled.command_id, "reason": handled.reason}
        if handled.outcome == CommandOutcome.APPLIED:
            log.info("command_applied", kind=handled.kind, command_id=handled.command_id)
        elif handled.outcome == CommandOutcome.DUPLICATE:
            log.info("command_duplicate", **data)
        else:
            self.last_refused = handled
            key = (handled.outcome, (handled.reason or "")[:40])
            event = "command_refused"
            if handled.outcome == FAILED:
                log.error(event, outcome=handled.outcome, **data)
            elif key in self._seen:
                log.debug(event, outcome=handled.outcome, **data)
            else:
                self._seen.add(key)
                log.warning(event, outcome=handled.outcome, note="repeats logged at debug", **data)
        return handled


def _why(outcome: CommandOutcome, command: Command) -> str | None:
    if outcome is CommandOutcome.DUPLICATE:
        return f"command {command.id} was handled already"
    if outcome is CommandOutcome.STALE:
        return f"{command.kind} version {command.version} is not newer than the one in force"
    return None


def _unrecorded(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if k in {INVALID, FAILED}}


def _utc_now() -> datetime:
    return datetime.now(UTC)
