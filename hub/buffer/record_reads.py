"""Medical records as the phones' API shows them: every version with its conflict flag.

(`Buffer.record_versions` gives the versions without the flag; the API needs both.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wire.items import MedicalRecord

if TYPE_CHECKING:
    import sqlite3


def flagged_versions(conn: sqlite3.Connection, record_id: str) -> list[tuple[MedicalRecord, bool]]:
    """(record, conflict) for every stored version, latest revision (then receipt) first."""
    rows = conn.execute(
        "SELECT json, conflict FROM records WHERE id = ?"
        " ORDER BY revision DESC, received_at DESC, content_hash",
        (record_id,),
    ).fetchall()
    return [(MedicalRecord.model_validate_json(body), bool(flag)) for body, flag in rows]
