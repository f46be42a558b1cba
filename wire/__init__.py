"""The hub-cloud contract: envelope, sealing, topics, item schemas and keys. Pure code only."""

from wire.envelope import (
    DEFAULT_LIMITS,
    Compression,
    Counts,
    Header,
    Limits,
    OpenedBatch,
    Priority,
    open_sealed,
    peek_header,
    seal,
)
from wire.errors import (
    DecodeError,
    IntegrityError,
    InvalidTopic,
    KeyFileError,
    TooLarge,
    UnsupportedVersion,
    WireError,
)
from wire.ids import uuid7
from wire.items import AuditEvent, Body, Component, MedicalRecord, Reading, RiskBand, TriageResult

__all__ = [
    "DEFAULT_LIMITS",
    "AuditEvent",
    "Body",
    "Component",
    "Compression",
    "Counts",
    "DecodeError",
    "Header",
    "IntegrityError",
    "InvalidTopic",
    "KeyFileError",
    "Limits",
    "MedicalRecord",
    "OpenedBatch",
    "Priority",
    "Reading",
    "RiskBand",
    "TooLarge",
    "TriageResult",
    "UnsupportedVersion",
    "WireError",
    "open_sealed",
    "peek_header",
    "seal",
    "uuid7",
]
