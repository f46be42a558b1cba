"""Edge/cloud agreement per model version, its Prometheus gauges, and the ingestor's scorer.

Agreement of a model version over a window = the share of its scored triage results
(`cloud_predictions.status = 'scored'`, computed by the hub inside the window) whose final band
at the edge (int8 model + NEWS2) equals the cloud's (float model + NEWS2). Results the cloud
could not score are counted apart and never in the share. Below the threshold (default
`DEFAULT_THRESHOLD`) the ingestor logs `agreement_below_threshold` and sets
`tecsa_models_agreement_alert{version}` to 1; `tecsa-cloud models agreement` exits 1.

`CloudScorer` is what the ingestor runs after each committed and acked batch: `notify()` only
sets a flag (batches with new triage results, readings or records wake it: late inputs of a
result scored before them are retried, see `cloud.models.full`); one background thread scores
what is pending (`cloud.models.full.score_pending`) and refreshes the gauges. Its errors are
logged and counted, never raised into the ingestor; whatever it missed, the next notification
or `tecsa-cloud models score` catches up.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import Counter, Gauge

from cloud.db.connection import pooled, translated
from cloud.errors import CloudError
from cloud.models.full import ModelShelf, score_pending

if TYPE_CHECKING:
    from collections.abc import Callable

    import psycopg
    from prometheus_client import CollectorRegistry
    from psycopg_pool import ConnectionPool

    from cloud.ingest.pipeline import Outcome

log = structlog.get_logger("cloud.models.agreement")

DEFAULT_THRESHOLD = 0.99
"""Agreement below this share raises the alert."""
DEFAULT_WINDOW = timedelta(days=7)
"""The agreement gauges' window (by the hubs' triage time)."""
SCORING_LOOKBACK = timedelta(days=30)
"""How far back (hub triage time) the ingestor's scorer looks for unscored results; older ones
are left to `tecsa-cloud models score`."""


@dataclass(frozen=True, slots=True)
class VersionAgreement:
    """Agreement of one model version over a window."""

    version: str
    scored: int
    agreed: int
    not_scorable: int
    input_mismatch: int
    disagreements: dict[str, int] = field(default_factory=dict)
    """'edge_band->cloud_band': count, for the results that disagree."""

    @property
    def agreement(self) -> float | None:
        """Agreed / scored; None with nothing scored."""
        return self.agreed / self.scored if self.scored else None

    def below(self, threshold: float) -> bool:
        """True when some results were scored and their agreement is under `threshold`."""
        share = self.agreement
        return share is not None and share < threshold

    def as_json(self, threshold: float) -> dict[str, Any]:
        """The operator command's JSON shape."""
        return {
            "version": self.version,
            "scored": self.scored,
            "agreed": self.agreed,
            "agreement": self.agreement,
            "not_scorable": self.not_scorable,
            "input_mismatch": self.input_mismatch,
            "disagreements": self.disagreements,
            "threshold": threshold,
            "below_threshold": self.below(threshold),
        }


_SUMMARY = """
SELECT model_version,
       count(*) FILTER (WHERE status = 'scored'),
       count(*) FILTER (WHERE agree),
       count(*) FILTER (WHERE status = 'not_scorable'),
       count(*) FILTER (WHERE status = 'scored' AND NOT input_match)
  FROM cloud_predictions
 WHERE computed_at >= %(since)s AND (%(version)s::text IS NULL OR model_version = %(version)s)
 GROUP BY model_version ORDER BY model_version
"""
_PAIRS = """
SELECT model_version, edge_band, cloud_band, count(*)
  FROM cloud_predictions
 WHERE status = 'scored' AND NOT agree AND computed_at >= %(since)s
   AND (%(version)s::text IS NULL OR model_version = %(version)s)
 GROUP BY model_version, edge_band, cloud_band ORDER BY 4 DESC, 2, 3
"""


def agreement(
    conn: psycopg.Connection[Any], *, since: datetime, version: str | None = None
) -> list[VersionAgreement]:
    """Agreement per model version for results the hubs computed at or after `since`."""
    params = {"since": since, "version": version}
    with translated():
        summary = conn.execute(_SUMMARY, params).fetchall()
        pairs = conn.execute(_PAIRS, params).fetchall()
    by_version: dict[str, dict[str, int]] = {}
    for v, edge, cloud, n in pairs:
        by_version.setdefault(v, {})[f"{edge}->{cloud}"] = int(n)
    return [
        VersionAgreement(
            version=v,
            scored=int(scored),
            agreed=int(agreed),
            not_scorable=int(unscorable),
            input_mismatch=int(mismatch),
            disagreements=by_version.get(v, {}),
        )
        for v, scored, agreed, unscorable, mismatch in summary
    ]


class AgreementMetrics:
    """The gauges and counters of cloud scoring, on the registry the composition root passes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.agreement = Gauge(
            "tecsa_models_edge_cloud_agreement",
            "Share of scored triage results whose edge band equals the cloud's, by model "
            "version, over the agreement window.",
            ["version"],
            registry=registry,
        )
        self.alert = Gauge(
            "tecsa_models_agreement_alert",
            "1 while a model version's edge/cloud agreement is below the threshold.",
            ["version"],
            registry=registry,
        )
        self.scored = Counter(
            "tecsa_models_scored",
            "Triage results given a cloud prediction, by status (scored, not_scorable).",
            ["status"],
            registry=registry,
        )
        self.errors = Counter(
            "tecsa_models_scoring_errors",
            "Scoring runs that failed (logged; the next run or `models score` catches up).",
            registry=registry,
        )

    def publish(self, rows: list[VersionAgreement], threshold: float) -> list[VersionAgreement]:
        """Set the gauges from `rows`; the versions below `threshold`."""
        below = []
        for row in rows:
            share = row.agreement
            if share is None:
                continue
            self.agreement.labels(row.version).set(share)
            self.alert.labels(row.version).set(1 if row.below(threshold) else 0)
            if row.below(threshold):
                below.append(row)
        return below


class CloudScorer:
    """Scores stored triage results in one background thread, woken by the ingestor.

    `notify` never blocks and never raises: call it after a batch is committed and acked.
    """

    def __init__(
        self,
        pool: ConnectionPool,
        metrics: AgreementMetrics,
        *,
        shelf: ModelShelf | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        window: timedelta = DEFAULT_WINDOW,
        lookback: timedelta = SCORING_LOOKBACK,
        db_timeout: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._pool = pool
        self.metrics = metrics
        self._shelf = shelf or ModelShelf()
        self.threshold = threshold
        self._window = window
        self._lookback = lookback
        self._timeout = db_timeout
        self._clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.runs = 0
        """Completed scoring runs (tests wait on it)."""
        self.idle = threading.Event()
        """Set when the scorer has nothing left to do."""
        self.idle.set()

    def after_stored(self, outcome: Outcome) -> None:
        """The ingestor's hook: wake the scorer when a batch brought something new.

        New triage results are scored; new readings or records may be the late inputs of a
        result scored before them (retried when due).
        """
        stored = outcome.stored
        if stored is not None and (
            stored.triage_results.inserted
            or stored.readings.inserted
            or stored.medical_records.inserted
        ):
            self.notify()

    def notify(self) -> None:
        """Ask for a scoring run (starts the thread on first use); returns at once."""
        with self._lock:
            self.idle.clear()
            self._wake.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="cloud-scorer", daemon=True)
                self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread after the run in progress."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_once(self) -> None:
        """Score what is pending and refresh the gauges; errors are logged and counted."""
        now = self._clock()
        try:
            with pooled(self._pool, timeout=self._timeout) as conn:
                report = score_pending(conn, self._shelf, now=now, since=now - self._lookback)
                rows = agreement(conn, since=now - self._window)
        except CloudError as exc:
            self.metrics.errors.inc()
            log.warning("cloud_scoring_failed", error=str(exc))
            return
        except Exception:  # a bug here must never reach the ingestor
            self.metrics.errors.inc()
            log.exception("cloud_scoring_failed")
            return
        self.metrics.scored.labels("scored").inc(report.scored)
        self.metrics.scored.labels("not_scorable").inc(sum(report.not_scorable.values()))
        for row in self.metrics.publish(rows, self.threshold):
            log.warning(
                "agreement_below_threshold",
                version=row.version,
                agreement=round(row.agreement or 0.0, 4),
                threshold=self.threshold,
                scored=row.scored,
                disagreements=row.disagreements,
            )

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                break
            self.run_once()
            self.runs += 1
            with self._lock:
                if not self._wake.is_set():
                    self.idle.set()
