"""Catching up: re-send what a hub missed when its retained up/status shows it is behind.

A hub reports in its retained `up/status` the revocation list and plans versions it holds
(`commands`) and the model it runs (`model_version`). The ingestor subscribes to every hub's
status and hands each message to `CommandResync.offer`; a worker thread compares it with what
the cloud holds as current (`cloud.db.resync.cloud_versions`) and, for each kind the hub is
behind on, re-sends the current snapshot or release with the ordinary push functions.

Re-sends are rate-limited per hub and kind (`cooldown`, 10 minutes by default) by an atomic
claim in PostgreSQL (`command_pushes`, migration 0006), so a flapping hub is not flooded and
N ingestors, which all see every status, re-send once. Unknown and revoked hubs are ignored;
a malformed status is counted and logged, never raised. See docs/commands.md ("Catching up").

`parse_status` and `stale_kinds` are pure; `CommandResync` is the I/O shell.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import Counter
from pydantic import ValidationError

from cloud.commands.push import publish_plans, push_revocations
from cloud.db import get_hub, pooled
from cloud.db.resync import claim_push, cloud_versions
from cloud.errors import CloudError
from wire.commands import CommandKind
from wire.errors import WireError
from wire.plans import PlanSnapshot
from wire.topics import Channel, parse_topic

if TYPE_CHECKING:
    from collections.abc import Callable

    import psycopg
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from prometheus_client import CollectorRegistry
    from psycopg_pool import ConnectionPool

    from cloud.config import MqttSettings
    from cloud.db.resync import CloudVersions

log = structlog.get_logger("cloud.commands.sync")

DEFAULT_COOLDOWN = timedelta(minutes=10)
"""At most one automatic re-send per hub and kind in this time."""
MAX_STATUS = 64 * 1024
"""A hub's status is a few hundred bytes; anything larger is refused before parsing."""
MAX_PENDING = 10_000
"""Hubs whose status waits for the worker, at most (one entry per hub: the latest status)."""


class StatusError(CloudError):
    """A hub's up/status is not something the cloud can read; the message says why."""


@dataclass(frozen=True, slots=True)
class HubReport:
    """What a hub's status says it holds. `None` for a field means "reported as nothing"."""

    hub_id: str
    online: bool
    commands_reported: bool
    """False when the status has no `commands` object (a hub without a command handler)."""
    revocations_version: int | None = None
    plans_version: int | None = None
    model_reported: bool = False
    """False when the status has no `model_version` key (a hub without a model runtime)."""
    model_version: str | None = None
    model_refused: str | None = None
    """The last release version the hub refused (it will refuse it again: not re-sent)."""


def parse_status(topic: str, payload: bytes) -> HubReport:
    """Read a hub's up/status message; raise `StatusError` saying what is wrong with it."""
    try:
        parsed = parse_topic(topic)
    except WireError as exc:
        raise StatusError(str(exc)) from None
    if parsed.channel is not Channel.STATUS:
        raise StatusError(f"not a status topic: {topic!r}")
    if len(payload) > MAX_STATUS:
        raise StatusError(f"status is {len(payload)} bytes, over {MAX_STATUS}")
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StatusError(f"status is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise StatusError("status is not a JSON object")
    if body.get("hub_id", parsed.hub_id) != parsed.hub_id:
        raise StatusError(f"status names hub {body.get('hub_id')!r} on {parsed.hub_id}'s topic")
    commands = body.get("commands")
    if commands is not None and not isinstance(commands, dict):
        raise StatusError("status 'commands' is not an object")
    model = body.get("model_version")
    if model is not None and not isinstance(model, str):
        raise StatusError("status 'model_version' is not a string")
    refused = body.get("model_refused")
    if refused is not None and not isinstance(refused, str):
        raise StatusError("status 'model_refused' is not a string")
    return HubReport(
        hub_id=parsed.hub_id,
        online=body.get("status") == "online",
        commands_reported=commands is not None,
        revocations_version=_version(commands, "revocations_version"),
        plans_version=_version(commands, "plans_version"),
        model_reported="model_version" in body,
        model_version=model,
        model_refused=refused,
    )


def stale_kinds(report: HubReport, cloud: CloudVersions) -> tuple[CommandKind, ...]:
    """The kinds of command the hub is behind on, compared with what the cloud holds."""
    kinds: list[CommandKind] = []
    if report.commands_reported:
        if _behind(report.revocations_version, cloud.revocations):
            kinds.append(CommandKind.REVOCATIONS)
        if _behind(report.plans_version, cloud.plans):
            kinds.append(CommandKind.PLANS)
    if (
        report.model_reported
        and cloud.model is not None
        and cloud.model not in (report.model_version, report.model_refused)
    ):
        kinds.append(CommandKind.MODEL_RELEASE)
    return tuple(kinds)


class ResyncMetrics:
    """`tecsa_cloud_command_resyncs_total{kind,outcome}` and malformed statuses."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.resyncs = Counter(
            "tecsa_cloud_command_resyncs",
            "Hubs found behind on a command kind, by outcome: sent (re-sent), cooldown (sent "
            "recently, by this or another ingestor), failed (broker, database or release store "
            "unavailable; retried after the cooldown).",
            ["kind", "outcome"],
            registry=registry,
        )
        self.statuses = Counter(
            "tecsa_cloud_hub_statuses",
            "Hub statuses read by the ingestor, by outcome: checked, offline, unknown_hub "
            "(not registered or revoked), malformed, dropped (too many waiting), error.",
            ["outcome"],
            registry=registry,
        )


class CommandResync:
    """Compares hubs' statuses with the cloud's current commands and re-sends what they miss.

    `offer` is the ingestor's hook (called in its event loop, returns at once, never raises);
    the work happens in one background thread. `check` does it synchronously (tests, tools).
    """

    def __init__(
        self,
        pool: ConnectionPool,
        *,
        key: Ed25519PrivateKey,
        mqtt: MqttSettings,
        metrics: ResyncMetrics,
        releases: Callable[[str], bytes] | None = None,
        cooldown: timedelta = DEFAULT_COOLDOWN,
        db_timeout: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """Build the re-sender; nothing runs until the first `offer`.

        `releases(version)` returns a sealed model release (e.g. `ReleaseArchive.get`); without
        it, model releases are not re-sent.
        """
        self._pool = pool
        self._key = key
        self._mqtt = mqtt
        self.metrics = metrics
        self._releases = releases
        self.cooldown = cooldown
        self._timeout = db_timeout
        self._clock = clock
        self._pending: dict[str, tuple[str, bytes]] = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._busy = False
        self._warned: set[str] = set()

    def offer(self, topic: str, payload: bytes) -> None:
        """Queue a status for checking (the latest per hub wins); returns at once."""
        hub = topic.removeprefix("tecsa/v1/hubs/").partition("/")[0]
        with self._cond:
            if self._stopping:
                return
            if hub not in self._pending and len(self._pending) >= MAX_PENDING:
                self.metrics.statuses.labels("dropped").inc()
                return
            self._pending[hub] = (topic, payload)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="cloud-command-resync", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every offered status was checked (tests); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker after the status in hand; statuses still waiting are dropped."""
        with self._cond:
            self._stopping = True
            self._pending.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def check(self, topic: str, payload: bytes) -> tuple[CommandKind, ...]:
        """Check one status now and re-send what is due; the kinds re-sent. Never raises."""
        try:
            report = parse_status(topic, payload)
        except StatusError as exc:
            self.metrics.statuses.labels("malformed").inc()
            self._warn_once(topic, "hub_status_malformed", topic=topic, reason=str(exc))
            return ()
        if not report.online:
            self.metrics.statuses.labels("offline").inc()
            return ()
        try:
            with pooled(self._pool, timeout=self._timeout) as conn:
                return self._check(conn, report)
        except CloudError as exc:
            self.metrics.statuses.labels("error").inc()
            log.warning("hub_status_check_failed", hub_id=report.hub_id, error=str(exc))
        except Exception:  # a bug on one status must not stop the others
            self.metrics.statuses.labels("error").inc()
            log.exception("hub_status_check_failed", hub_id=report.hub_id)
        return ()

    def _check(self, conn: psycopg.Connection[Any], report: HubReport) -> tuple[CommandKind, ...]:
        hub = get_hub(conn, report.hub_id)
        if hub is None or not hub.active:
            self.metrics.statuses.labels("unknown_hub").inc()
            self._warn_once(report.hub_id, "hub_status_ignored", hub_id=report.hub_id)
            return ()
        self.metrics.statuses.labels("checked").inc()
        cloud = cloud_versions(conn, report.hub_id)
        sent: list[CommandKind] = []
        for kind in stale_kinds(report, cloud):
            if kind is CommandKind.MODEL_RELEASE and self._releases is None:
                continue
            now = self._clock()
            if not claim_push(conn, report.hub_id, kind.value, now=now, cooldown=self.cooldown):
                self.metrics.resyncs.labels(kind.value, "cooldown").inc()
                log.debug("command_resync_cooldown", hub_id=report.hub_id, kind=kind.value)
                continue
            try:
                version = self._send(conn, kind, report.hub_id, cloud, now)
            except (CloudError, WireError, ValidationError) as exc:
                self.metrics.resyncs.labels(kind.value, "failed").inc()
                log.warning(
                    "command_resync_failed", hub_id=report.hub_id, kind=kind.value, error=str(exc)
                )
                continue
            self.metrics.resyncs.labels(kind.value, "sent").inc()
            log.info(
                "command_resent",
                hub_id=report.hub_id,
                kind=kind.value,
                hub_had=_had(report, kind),
                sent=version,
            )
            sent.append(kind)
        return tuple(sent)

    def _send(
        self,
        conn: psycopg.Connection[Any],
        kind: CommandKind,
        hub_id: str,
        cloud: CloudVersions,
        now: datetime,
    ) -> str:
        """Re-send the current `kind` to `hub_id`; the version sent."""
        if kind is CommandKind.REVOCATIONS:
            pushed = push_revocations(conn, key=self._key, mqtt=self._mqtt, hub_id=hub_id, now=now)
            return str(pushed.version)
        if kind is CommandKind.PLANS:
            snapshot = PlanSnapshot.model_validate(cloud.plans_snapshot)
            pushed = publish_plans(
                conn, snapshot.plans, key=self._key, mqtt=self._mqtt, hub_id=hub_id, now=now
            )
            return str(pushed.version)
        # Imported here: the model registry pulls in S3 code the other kinds do not need.
        from cloud.models.releases import push_release  # noqa: PLC0415

        assert self._releases is not None  # noqa: S101 - _check skips the model without it
        assert cloud.model is not None  # noqa: S101 - stale_kinds needs one
        sealed = self._releases(cloud.model)
        push_release(conn, sealed, key=self._key, mqtt=self._mqtt, hub_id=hub_id, now=now)
        return cloud.model

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._busy = False
                self._cond.notify_all()
                self._cond.wait_for(lambda: self._pending or self._stopping)
                if self._stopping:
                    return
                hub = next(iter(self._pending))
                topic, payload = self._pending.pop(hub)
                self._busy = True
            self.check(topic, payload)

    def _warn_once(self, key: str, event: str, **fields: Any) -> None:  # noqa: ANN401 - log data
        level = log.debug if key in self._warned else log.warning
        self._warned.add(key)
        level(event, **fields)


def _version(commands: dict[str, Any] | None, name: str) -> int | None:
    if commands is None:
        return None
    value = commands.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StatusError(f"status 'commands.{name}' is not a version number")
    return value


def _behind(hub: int | None, cloud: int | None) -> bool:
    return cloud is not None and (hub is None or hub < cloud)


def _had(report: HubReport, kind: CommandKind) -> str | int | None:
    if kind is CommandKind.REVOCATIONS:
        return report.revocations_version
    if kind is CommandKind.PLANS:
        return report.plans_version
    return report.model_version
