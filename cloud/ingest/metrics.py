"""The ingestor's Prometheus metrics, registered on a registry the composition root passes in."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from cloud.ingest.pipeline import Outcome

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class IngestMetrics:
    """What an operator watches: outcomes, rows, latency, errors by kind, reconnects."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.batches = Counter(
            "tecsa_ingest_batches",
            "Batches decided, by outcome: stored, duplicate, rejected (quarantined and acked "
            "rejected), quarantined (quarantined, no batch to ack).",
            ["outcome"],
            registry=registry,
        )
        self.readings_inserted = Counter(
            "tecsa_ingest_readings_inserted", "Readings newly stored.", registry=registry
        )
        self.items_inserted = Counter(
            "tecsa_ingest_items_inserted",
            "Items newly stored, by kind.",
            ["kind"],
            registry=registry,
        )
        self.processing_seconds = Histogram(
            "tecsa_ingest_processing_seconds",
            "Time from taking a message to its ack (or to giving up on it).",
            buckets=_BUCKETS,
            registry=registry,
        )
        self.errors = Counter(
            "tecsa_ingest_errors",
            "Messages left undecided (no ack; the hub sends them again), by kind.",
            ["kind"],
            registry=registry,
        )
        self.acks = Counter(
            "tecsa_ingest_acks_published",
            "Signed acks published, by status.",
            ["status"],
            registry=registry,
        )
        self.reconnects = Counter(
            "tecsa_ingest_reconnects",
            "Connections to the broker after the first.",
            registry=registry,
        )
        self.connected = Gauge(
            "tecsa_ingest_connected", "1 while subscribed to the broker.", registry=registry
        )
        for outcome in ("stored", "duplicate", "rejected", "quarantined"):
            self.batches.labels(outcome)

    def count(self, outcome: Outcome) -> None:
        """Count a decided message."""
        self.batches.labels(outcome.verdict.value).inc()
        if outcome.stored is None:
            return
        for kind in ("readings", "medical_records", "triage_results", "audit_events"):
            inserted = getattr(outcome.stored, kind).inserted
            if inserted:
                self.items_inserted.labels(kind).inc(inserted)
        self.readings_inserted.inc(outcome.stored.readings.inserted)
