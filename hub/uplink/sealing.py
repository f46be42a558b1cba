"""Sealing a batch of stored readings without parsing them again.

The buffer keeps each reading as the exact JSON `wire.Reading.model_dump_json()` produced when
it was stored, which is also exactly how `wire.Body.model_dump_json()` writes that reading inside
a body. Parsing thousands of readings back into models only to write the same bytes again would
cost more than sealing itself (about 25 us a reading against 8), so the body's JSON is joined
from the stored text and handed to `wire.seal` through `_SerializedBody`. The test
`test_serialized_body_matches_wire_body` pins that the bytes are identical to a parsed body's.
Medical records and triage results are joined the same way from their stored JSON
(`test_serialized_body_with_items_matches_wire_body`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pydantic import PrivateAttr

from wire.envelope import NONCE_LEN, Priority, seal
from wire.items import BODY_VERSION, Body

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime
    from uuid import UUID

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    from wire.envelope import Limits

_BODY_HEAD = f'{{"v":{BODY_VERSION},"readings":['
_BODY_TAIL = '],"medical_records":[],"triage_results":[],"audit_events":[]}'
_RECORDS = '],"medical_records":['
_TRIAGE = '],"triage_results":['
_AUDIT_TAIL = '],"audit_events":[]}'


class _SerializedBody(Body):
    """A body of items given as their wire JSON; `wire.seal` reads only these three methods."""

    _plain: str = PrivateAttr(default="")
    _readings: int = PrivateAttr(default=0)
    _records: int = PrivateAttr(default=0)
    _triage: int = PrivateAttr(default=0)

    @classmethod
    def of(
        cls,
        readings_json: Sequence[str],
        records_json: Sequence[str] = (),
        triage_json: Sequence[str] = (),
    ) -> _SerializedBody:
        body = cls.model_construct()
        if records_json or triage_json:
            plain = (
                _BODY_HEAD
                + ",".join(readings_json)
                + _RECORDS
                + ",".join(records_json)
                + _TRIAGE
                + ",".join(triage_json)
                + _AUDIT_TAIL
            )
        else:  # the readings-only fast path
            plain = _BODY_HEAD + ",".join(readings_json) + _BODY_TAIL
        body._plain = plain  # noqa: SLF001 - own class
        body._readings = len(readings_json)  # noqa: SLF001 - own class
        body._records = len(records_json)  # noqa: SLF001 - own class
        body._triage = len(triage_json)  # noqa: SLF001 - own class
        return body

    def model_dump_json(self, *args: Any, **kwargs: Any) -> str:  # noqa: ANN401 - pydantic's signature
        """The body's JSON, exactly as `Body.model_dump_json()` writes these readings."""
        del args, kwargs
        return self._plain

    def counts(self) -> dict[str, int]:
        """Item counts for the header."""
        return {
            "readings": self._readings,
            "medical_records": self._records,
            "triage_results": self._triage,
            "audit_events": 0,
        }

    def total(self) -> int:
        """Items in the body."""
        return self._readings + self._records + self._triage


def wire_priority(priority: int) -> Priority:
    """The envelope priority of a buffer priority: 0 alert, 1 routine, anything later bulk."""
    if priority <= 0:
        return Priority.ALERT
    return Priority.ROUTINE if priority == 1 else Priority.BULK


def body_json(
    readings_json: Sequence[str],
    records_json: Sequence[str] = (),
    triage_json: Sequence[str] = (),
) -> str:
    """The plaintext body (docs/wire.md section 4) of items given as their wire JSON."""
    return _SerializedBody.of(readings_json, records_json, triage_json).model_dump_json()


def seal_readings(
    readings_json: Sequence[str],
    *,
    hub_id: str,
    batch_id: UUID,
    seq: int,
    now: datetime,
    priority: int,
    hub_key: Ed25519PrivateKey,
    cloud_key: X25519PublicKey,
    limits: Limits,
    ephemeral_key: X25519PrivateKey | None = None,
    nonce: bytes | None = None,
    records_json: Sequence[str] = (),
    triage_json: Sequence[str] = (),
) -> bytes:
    """Seal readings (and medical records, triage results), given as wire JSON, as one batch.

    The caller must not put two versions of the same record id and revision in one batch (the
    body refuses them: a conflict's versions travel in separate batches). A fresh ephemeral key
    and nonce are drawn unless given (only to reproduce known bytes).
    """
    return seal(
        _SerializedBody.of(readings_json, records_json, triage_json),
        hub_id=hub_id,
        batch_id=batch_id,
        seq=seq,
        now=now,
        priority=wire_priority(priority),
        hub_key=hub_key,
        cloud_key=cloud_key,
        ephemeral_key=ephemeral_key if ephemeral_key is not None else X25519PrivateKey.generate(),
        nonce=nonce if nonce is not None else os.urandom(NONCE_LEN),
        limits=limits,
    )
