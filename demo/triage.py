"""The demo's triage accounting: the hub's results, found once in the cloud and scored there.

The hub triages the readings of patients bound by encounters (docs/triage.md); each result
travels to the cloud (`triage_results`), where the ingestor's `CloudScorer` gives it a prediction
of the full model (`cloud_predictions`, scored or not scorable). This module counts both sides
for one hub; it reads the hub's buffer read-only and the cloud's PostgreSQL.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg

if TYPE_CHECKING:
    from pathlib import Path


_UNTRIAGED = """
SELECT count(*) FROM readings AS r
 WHERE r.patient_id IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM triage_readings AS t WHERE t.reading_id = r.id)
"""
_CLOUD_RESULTS = """
SELECT t.id::text, CASE WHEN p.retry_at IS NULL THEN p.status END
  FROM triage_results AS t LEFT JOIN cloud_predictions AS p ON p.triage_id = t.id
 WHERE t.hub_id = %s
"""
"""Each result of the hub in the cloud and its verdict; a verdict the scorer will retry (its
inputs had not all arrived) is not final yet: null, as no verdict."""
_AGREEMENT = """
SELECT p.model_version,
       count(*) FILTER (WHERE p.status = 'scored'),
       count(*) FILTER (WHERE p.agree),
       count(*) FILTER (WHERE p.status = 'not_scorable')
  FROM cloud_predictions AS p JOIN triage_results AS t ON t.id = p.triage_id
 WHERE t.hub_id = %s
 GROUP BY p.model_version ORDER BY p.model_version
"""


@dataclass(frozen=True, slots=True)
class ModelAgreement:
    """How often the cloud's full model agreed with the hub's band, for one model version."""

    version: str
    scored: int
    agreed: int
    not_scorable: int

    @property
    def agreement(self) -> float | None:
        """Agreed / scored; None with nothing scored."""
        return self.agreed / self.scored if self.scored else None

    def line(self) -> str:
        """One line per model version, under the triage line."""
        share = "n/a" if self.agreement is None else f"{self.agreement:.2f}"
        return (
            f"  model {self.version}: scored={self.scored} agreed={self.agreed} "
            f"agreement={share} not_scorable={self.not_scorable}"
        )


@dataclass(frozen=True, slots=True)
class TriageCheck:
    """The hub's triage results against the cloud's, for one hub."""

    on_hub: int = 0
    high: int = 0
    """Results the hub banded high."""
    untriaged: int = 0
    """Readings with a patient that no result covers yet (the engine has work left)."""
    in_cloud: int = 0
    """The hub's results found in the cloud (each once: the id is the table's key)."""
    unknown_in_cloud: int = 0
    """Results the cloud holds for this hub that the hub does not."""
    scored: int = 0
    """The hub's results the cloud's model judged (scored or not scorable)."""
    versions: tuple[ModelAgreement, ...] = ()

    @property
    def settled(self) -> bool:
        """Nothing left to triage, send or score (true with no result at all)."""
        return (
            self.untriaged == 0
            and self.in_cloud == self.on_hub
            and self.unknown_in_cloud == 0
            and self.scored == self.in_cloud
        )

    @property
    def ok(self) -> bool:
        """The hub triaged something, and every result is in the cloud once and was scored."""
        return self.on_hub > 0 and self.settled

    @property
    def model_scored(self) -> int:
        """Results the cloud's model scored (the others: not scorable, with a reason)."""
        return sum(v.scored for v in self.versions)

    @property
    def agreement(self) -> float | None:
        """Agreed / scored over every model version; None with nothing scored."""
        scored = sum(v.scored for v in self.versions)
        return sum(v.agreed for v in self.versions) / scored if scored else None

    def line(self) -> str:
        """The summary line the demo prints, then one line per model version."""
        share = "n/a" if self.agreement is None else f"{self.agreement:.2f}"
        head = (
            f"triage: on_hub={self.on_hub} in_cloud={self.in_cloud} high={self.high} "
            f"agreement={share}"
        )
        return "\n".join([head, *(v.line() for v in self.versions)])


def triage_check(hub_db: Path, database_url: str, hub_id: str) -> TriageCheck:
    """Count the hub's triage results and find each of them, and its scoring, in the cloud."""
    bands, untriaged = _hub_triage(hub_db)
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(_CLOUD_RESULTS, (hub_id,)).fetchall()
        versions = tuple(
            ModelAgreement(str(v), int(s), int(a), int(n))
            for v, s, a, n in conn.execute(_AGREEMENT, (hub_id,)).fetchall()
        )
    cloud = {str(i): status for i, status in rows}
    mine = cloud.keys() & bands.keys()
    return TriageCheck(
        on_hub=len(bands),
        high=sum(1 for b in bands.values() if b == "high"),
        untriaged=untriaged,
        in_cloud=len(mine),
        unknown_in_cloud=len(cloud.keys() - bands.keys()),
        scored=sum(1 for i in mine if cloud[i] is not None),
        versions=versions,
    )


def _hub_triage(hub_db: Path) -> tuple[dict[str, str], int]:
    """{result id: band} of the hub's results, and its readings with a patient not yet triaged."""
    if not hub_db.exists():
        return {}, 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{hub_db}?mode=ro", uri=True)) as conn:
            bands = {str(i): str(b) for i, b in conn.execute("SELECT id, band FROM triage")}
            (untriaged,) = conn.execute(_UNTRIAGED).fetchone()
    except sqlite3.Error:
        return {}, 0
    return bands, int(untriaged)
