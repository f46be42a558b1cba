"""The uplink's own configuration and keys: small frozen values the composition root builds."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path  # noqa: TC003 - a dataclass field type, resolved at runtime
from typing import TYPE_CHECKING, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from hub.uplink.batcher import BatchLimits
from hub.uplink.breaker import Backoff
from hub.uplink.errors import UplinkConfigError
from wire.envelope import DEFAULT_LIMITS, Limits
from wire.errors import WireError
from wire.keys import load_private_key, load_public_key
from wire.topics import validate_hub_id

if TYPE_CHECKING:
    from hub.config import UplinkSettings

_URL = re.compile(r"^(?P<scheme>mqtts?)://(?P<host>\[[^\]]+\]|[^:/\s]+)(?::(?P<port>\d{1,5}))?$")
MQTT_PORT = 1883  # IANA, MQTT over TCP
MQTTS_PORT = 8883  # IANA, MQTT over TLS


@dataclass(frozen=True, slots=True)
class UplinkKeys:
    """The hub's identity key (signs batches) and the cloud's public keys (seal to, verify with)."""

    hub_identity: Ed25519PrivateKey
    cloud_ingest: X25519PublicKey
    cloud_signing: Ed25519PublicKey

    @classmethod
    def from_files(
        cls, *, hub_identity: Path, cloud_ingest: Path, cloud_signing: Path
    ) -> UplinkKeys:
        """Load the three keys from PEM files; raises `wire.KeyFileError` naming the bad file."""
        return cls(
            hub_identity=load_private_key(hub_identity, Ed25519PrivateKey),
            cloud_ingest=load_public_key(cloud_ingest, X25519PublicKey),
            cloud_signing=load_public_key(cloud_signing, Ed25519PublicKey),
        )


@dataclass(frozen=True, slots=True)
class UplinkConfig:
    """How the uplink reaches the broker and paces batches."""

    hub_id: str
    broker_url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    batch: BatchLimits = field(default_factory=BatchLimits)
    ack_timeout_s: float = 60.0
    """A batch without a verified ack after this long is republished (same bytes)."""
    window: int = 8
    """Batches published and waiting for their ack at once."""
    page_size: int = 500
    """Unsent rows read from SQLite per query."""
    idle_poll_s: float = 1.0
    """How often to look for new rows when nothing is pending and nobody called `wake()`."""
    status_interval_s: float = 60.0
    """How often the retained status and the backlog gauges are refreshed."""
    breaker_threshold: int = 3
    """Consecutive failures (connects, PUBACKs, acks) that open the circuit breaker."""
    reconnect: Backoff = field(default_factory=lambda: Backoff(base=0.5, cap=60.0))
    probe: Backoff = field(default_factory=lambda: Backoff(base=2.0, cap=120.0))
    """Wait before each probe while the breaker is open."""
    keepalive_s: int = 30
    timeout_s: float = 10.0
    """Wait for CONNACK, SUBACK and each PUBACK."""
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    client_id: str | None = None
    """MQTT client id; `tecsa-hub-{hub_id}` by default (stable: the broker keeps the session)."""
    clean_session: bool = False
    """False: the broker keeps our `down/ack` subscription and queues acks while we are away."""
    version: str = "0"
    """The hub software version, shown in the retained status."""
    limits: Limits = DEFAULT_LIMITS

    def __post_init__(self) -> None:
        try:
            validate_hub_id(self.hub_id)
        except WireError as exc:
            raise UplinkConfigError(str(exc)) from None
        if _URL.match(self.broker_url) is None:
            raise UplinkConfigError(
                f"uplink broker_url {self.broker_url!r}: use mqtt://host:port or mqtts://host:port"
            )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise UplinkConfigError("uplink tls_cert and tls_key go together: set both or neither")
        for name in ("ack_timeout_s", "idle_poll_s", "status_interval_s", "timeout_s"):
            if getattr(self, name) <= 0:
                raise UplinkConfigError(f"uplink {name} must be positive")
        if self.window < 1 or self.page_size < 1 or self.breaker_threshold < 1:
            raise UplinkConfigError("uplink window, page_size and breaker_threshold must be >= 1")
        if self.batch.max_items > self.limits.max_items:
            raise UplinkConfigError(
                f"uplink batch max_items {self.batch.max_items} exceeds the envelope's"
                f" {self.limits.max_items}"
            )

    @classmethod
    def from_settings(cls, hub_id: str, settings: UplinkSettings, *, version: str) -> UplinkConfig:
        """Build from the `[uplink]` section of the hub settings."""
        return cls(
            hub_id=hub_id,
            broker_url=settings.broker_url,
            username=settings.username,
            password=(
                settings.password.get_secret_value() if settings.password is not None else None
            ),
            tls_ca=settings.tls_ca,
            tls_cert=settings.tls_cert,
            tls_key=settings.tls_key,
            batch=BatchLimits(
                max_items=settings.batch_max_items,
                max_bytes=settings.batch_max_bytes,
                max_age=settings.batch_max_age_s,
            ),
            ack_timeout_s=settings.ack_timeout_s,
            version=version,
        )

    @property
    def tls(self) -> bool:
        """True for mqtts:// or when a CA is given."""
        return self.broker_url.startswith("mqtts://") or self.tls_ca is not None

    @property
    def host(self) -> str:
        """The broker's host name or address."""
        match = _URL.match(self.broker_url)
        assert match is not None  # noqa: S101 - checked in __post_init__
        return match["host"].strip("[]")

    @property
    def port(self) -> int:
        """The broker's port (1883, or 8883 with TLS, unless the URL names one)."""
        match = _URL.match(self.broker_url)
        assert match is not None  # noqa: S101 - checked in __post_init__
        if match["port"] is not None:
            return int(match["port"])
        return MQTTS_PORT if self.tls else MQTT_PORT

    @property
    def mqtt_client_id(self) -> str:
        """The client id used to connect."""
        return self.client_id or f"tecsa-hub-{self.hub_id}"
