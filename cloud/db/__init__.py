"""The cloud's PostgreSQL layer: migrations, partitions, the batch loader and the hub registry.

SQL lives only here. Every function takes a psycopg connection (or a URL) and raises only
`cloud.db.errors` classes; see docs/cloud-db.md for the schema and its contracts.
"""

from cloud.db.connection import connect, open_pool, pooled, translated
from cloud.db.errors import (
    DatabaseConflict,
    DatabaseError,
    DatabaseUnavailable,
    DataRefused,
    HubExists,
    HubRegistryError,
    InvalidHub,
    MigrationChecksumMismatch,
    SchemaError,
    SchemaTooNew,
    UnknownHub,
)
from cloud.db.hubs import Hub, add_hub, get_hub, list_hubs, revoke_hub
from cloud.db.loader import (
    DecidedBatch,
    KindCounts,
    StoreResult,
    find_batch,
    quarantine_batch,
    reject_batch,
    store_batch,
)
from cloud.db.partitions import ensure_partitions, ensure_partitions_around, list_partitions
from cloud.db.schema import check_schema, migrations, schema_status, upgrade

__all__ = [
    "DataRefused",
    "DatabaseConflict",
    "DatabaseError",
    "DatabaseUnavailable",
    "DecidedBatch",
    "Hub",
    "HubExists",
    "HubRegistryError",
    "InvalidHub",
    "KindCounts",
    "MigrationChecksumMismatch",
    "SchemaError",
    "SchemaTooNew",
    "StoreResult",
    "UnknownHub",
    "add_hub",
    "check_schema",
    "connect",
    "ensure_partitions",
    "ensure_partitions_around",
    "find_batch",
    "get_hub",
    "list_hubs",
    "list_partitions",
    "migrations",
    "open_pool",
    "pooled",
    "quarantine_batch",
    "reject_batch",
    "revoke_hub",
    "schema_status",
    "store_batch",
    "translated",
    "upgrade",
]
