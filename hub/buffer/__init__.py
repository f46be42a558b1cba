"""The hub buffer: readings, devices and encounters in SQLite, durable before acknowledged.

Construct with `Buffer.open(BufferConfig(path=...))`; `close()` it on shutdown. See docs/buffer.md.
"""

from hub.buffer.config import BufferConfig
from hub.buffer.errors import (
    BufferBusy,
    BufferClosed,
    BufferCorrupt,
    BufferFull,
    BufferNotFound,
    DiskFull,
    EncounterAlreadyEnded,
    EncounterError,
    EncounterOverlap,
    HubBufferError,
    InvalidEncounter,
    NotABuffer,
    SchemaTooNew,
    StorageError,
    UnknownDevice,
    UnknownEncounter,
)
from hub.buffer.schema import SCHEMA_VERSION
from hub.buffer.store import Buffer, SyncWrites
from hub.buffer.values import (
    BondState,
    Device,
    Encounter,
    InsertResult,
    KindCount,
    NewReading,
    PatientMatch,
    PendingReading,
    Priority,
    Stats,
)

__all__ = [
    "SCHEMA_VERSION",
    "BondState",
    "Buffer",
    "BufferBusy",
    "BufferClosed",
    "BufferConfig",
    "BufferCorrupt",
    "BufferFull",
    "BufferNotFound",
    "Device",
    "DiskFull",
    "Encounter",
    "EncounterAlreadyEnded",
    "EncounterError",
    "EncounterOverlap",
    "HubBufferError",
    "InsertResult",
    "InvalidEncounter",
    "KindCount",
    "NewReading",
    "NotABuffer",
    "PatientMatch",
    "PendingReading",
    "Priority",
    "SchemaTooNew",
    "Stats",
    "StorageError",
    "SyncWrites",
    "UnknownDevice",
    "UnknownEncounter",
]
