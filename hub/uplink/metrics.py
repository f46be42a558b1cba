"""Prometheus metrics of the uplink, registered on a registry the composition root passes in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class UplinkMetrics:
    """What operators watch: backlog, its age, batches by outcome, reconnects, the breaker."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = registry if registry is not None else CollectorRegistry()
        self.registry = reg
        self.backlog = Gauge(
            "tecsa_uplink_backlog_readings",
            "Readings the cloud has not acknowledged yet (waiting, in flight or rejected).",
            registry=reg,
        )
        self.oldest_unsent_age = Gauge(
            "tecsa_uplink_oldest_unsent_age_seconds",
            "Age of the oldest unacknowledged reading (0 when none).",
            registry=reg,
        )
        self.in_flight = Gauge(
            "tecsa_uplink_in_flight_batches",
            "Batches published by this process and waiting for the cloud's ack.",
            registry=reg,
        )
        self.sent = Counter(
            "tecsa_uplink_batches_sent",
            "New batches sealed and published for the first time.",
            registry=reg,
        )
        self.republished = Counter(
            "tecsa_uplink_batches_republished",
            "Publications of a batch again (ack timeout, reconnect, restart), same bytes.",
            registry=reg,
        )
        self.acked = Counter(
            "tecsa_uplink_batches_acked",
            "Batches the cloud acknowledged as stored or duplicate.",
            registry=reg,
        )
        self.rejected = Counter(
            "tecsa_uplink_batches_rejected",
            "Batches the cloud rejected (quarantined): not resent, readings kept for review.",
            registry=reg,
        )
        self.delivered = Counter(
            "tecsa_uplink_readings_delivered",
            "Readings marked delivered on a verified ack.",
            registry=reg,
        )
        self.bad_acks = Counter(
            "tecsa_uplink_bad_acks",
            "Messages on down/ack that were ignored: forged, misdirected, garbage or unknown.",
            ["reason"],
            registry=reg,
        )
        self.reconnects = Counter(
            "tecsa_uplink_reconnects",
            "Connections to the broker after the first one.",
            registry=reg,
        )
        self.breaker = Gauge(
            "tecsa_uplink_breaker_state",
            "Circuit breaker: 0 closed, 1 open, 2 half open (one probe out).",
            registry=reg,
        )
        self.connected = Gauge(
            "tecsa_uplink_connected", "1 while connected to the broker.", registry=reg
        )
