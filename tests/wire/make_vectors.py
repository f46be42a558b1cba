"""Regenerate the known-answer vectors in tests/wire/vectors/. Run by hand, review the diff.

    .venv/bin/python tests/wire/make_vectors.py

The vectors pin the exact bytes of envelope v1. Regenerating them is a wire-format change: it
needs a reason in docs/wire.md and must never be done to make a failing test pass.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from wire import Body, Compression, Priority, seal
from wire.keys import raw_public

HERE = Path(__file__).parent / "vectors"

# Fixed keys: 32 bytes each, written out so that another implementation can load them.
HUB_SEED = bytes(range(1, 33))
CLOUD_SEED = bytes(range(33, 65))
EPHEMERAL_SEED = bytes(range(65, 97))
OTHER_HUB_SEED = bytes(range(97, 129))
NONCE = bytes(range(200, 212))

READING = {
    "id": "019ac9a0-7c00-7abc-8def-0123456789ab",
    "device_id": "ble-cuff-0001",
    "kind": "blood_pressure",
    "components": {
        "systolic": {"value": 138.0, "unit": "mm[Hg]"},
        "diastolic": {"value": 88.0, "unit": "mm[Hg]"},
        "mean_arterial": {"value": 120.0, "unit": "mm[Hg]"},
        "pulse": {"value": 60.0, "unit": "/min"},
    },
    "device_time": "2026-11-28T09:41:59",
    "measured_at": "2026-11-28T09:41:59Z",
    "received_at": "2026-11-28T09:42:03.250000Z",
    "quality": ["irregular_pulse"],
    "patient_id": "pat-000042",
    "encounter_id": "019ac99f-0000-7000-8000-000000000001",
    "device_seq": None,
}

MIXED = {
    "v": 1,
    "readings": [
        READING,
        {
            "id": "019ac9a0-7c01-7abc-8def-0123456789ac",
            "device_id": "ble-thermo-0002",
            "kind": "body_temperature",
            "components": {"temperature": {"value": 37.6, "unit": "Cel"}},
            "device_time": None,
            "measured_at": None,
            "received_at": "2026-11-28T09:42:04Z",
            "quality": [],
            "patient_id": None,
            "encounter_id": None,
            "device_seq": None,
        },
        {
            "id": "019ac9a0-7c02-7abc-8def-0123456789ad",
            "device_id": "ble-gluco-0003",
            "kind": "glucose",
            "components": {"glucose": {"value": None, "unit": "mg/dL"}},
            "device_time": "2026-11-28T08:05:30",
            "measured_at": "2026-11-28T08:05:30Z",
            "received_at": "2026-11-28T09:42:05Z",
            "quality": ["no_value"],
            "patient_id": "pat-000042",
            "encounter_id": None,
            "device_seq": 7,
        },
    ],
    "medical_records": [
        {
            "id": "019ac990-0000-7000-8000-00000000000a",
            "revision": 2,
            "updated_at": "2026-11-28T09:30:00Z",
            "patient_id": "pat-000042",
            "agent_id": "agent-17",
            "type": "antenatal_visit",
            "payload": {
                "gestational_weeks": 31,
                "notes": "oedème des chevilles",
                "danger_signs": [],
            },
            "content_hash": "sha256:" + "ab" * 32,
            "flags": [],
        }
    ],
    "triage_results": [
        {
            "id": "019ac9a0-7d00-7000-8000-00000000000b",
            "patient_id": "pat-000042",
            "reading_ids": ["019ac9a0-7c00-7abc-8def-0123456789ab"],
            "computed_at": "2026-11-28T09:42:06Z",
            "band": "medium",
            "score": 5.0,
            "news2_score": 5,
            "news2_subscores": {"systolic": 0, "pulse": 1, "temperature": 1, "spo2": 3},
            "complete": False,
            "model_version": "news2-only",
            "input_hash": "sha256:" + "cd" * 32,
        }
    ],
    "audit_events": [
        {
            "id": "019ac9a0-7e00-7000-8000-00000000000c",
            "at": "2026-11-28T09:00:00Z",
            "actor": "tech-3",
            "action": "device_paired",
            "detail": {"address": "C0:FF:EE:00:00:01"},
        }
    ],
}

CASES = [
    {
        "name": "v1-none-one-reading",
        "about": "one reading, no compression: every byte of the body is visible",
        "compression": "none",
        "priority": "routine",
        "seq": 1,
        "batch_id": "019ac9a1-0000-7000-8000-000000000001",
        "body": {"v": 1, "readings": [READING]},
    },
    {
        "name": "v1-zstd-mixed",
        "about": "three readings, a medical record, a triage result and an audit event, zstd",
        "compression": "zstd",
        "priority": "alert",
        "seq": 42,
        "batch_id": "019ac9a1-0000-7000-8000-000000000002",
        "body": MIXED,
    },
]


def main() -> None:
    """Write one JSON file per case: inputs, keys and the expected sealed bytes in hex."""
    hub = Ed25519PrivateKey.from_private_bytes(HUB_SEED)
    cloud = X25519PrivateKey.from_private_bytes(CLOUD_SEED)
    eph = X25519PrivateKey.from_private_bytes(EPHEMERAL_SEED)
    other = Ed25519PrivateKey.from_private_bytes(OTHER_HUB_SEED)
    now = datetime(2026, 11, 28, 9, 42, 10, 500000, tzinfo=UTC)
    for case in CASES:
        body = Body.model_validate(case["body"])
        sealed = seal(
            body,
            hub_id="hub-vector-01",
            batch_id=UUID(str(case["batch_id"])),
            seq=int(str(case["seq"])),
            now=now,
            priority=Priority(case["priority"]),
            hub_key=hub,
            cloud_key=cloud.public_key(),
            ephemeral_key=eph,
            nonce=NONCE,
            compression=Compression(case["compression"]),
        )
        vector = {
            "name": case["name"],
            "about": case["about"],
            "inputs": {
                "hub_id": "hub-vector-01",
                "batch_id": case["batch_id"],
                "seq": case["seq"],
                "created_at": now.isoformat().replace("+00:00", "Z"),
                "priority": case["priority"],
                "compression": case["compression"],
                "hub_ed25519_private": HUB_SEED.hex(),
                "hub_ed25519_public": raw_public(hub).hex(),
                "cloud_x25519_private": CLOUD_SEED.hex(),
                "cloud_x25519_public": raw_public(cloud).hex(),
                "ephemeral_x25519_private": EPHEMERAL_SEED.hex(),
                "nonce": NONCE.hex(),
                "body": case["body"],
            },
            "other_hub_ed25519_private": OTHER_HUB_SEED.hex(),
            "other_hub_ed25519_public": raw_public(other).hex(),
            "body_json": body.model_dump_json(),
            "sealed_hex": sealed.hex(),
        }
        path = HERE / f"{case['name']}.json"
        path.write_text(json.dumps(vector, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {path} ({len(sealed)} sealed bytes)")


COMMAND_SIGNING_SEED = bytes(range(129, 161))
COMMAND_CASE = {
    "name": "cmd-v1-revocations",
    "about": "a revocations command to hub-vector-01 (wire.commands), signed by the cloud",
    "body": {
        "v": 1,
        "id": "019ac9a2-0000-7000-8000-000000000001",
        "hub_id": "hub-vector-01",
        "issued_at": "2026-11-28T10:00:00Z",
        "expires_at": "2026-12-05T10:00:00Z",
        "kind": "revocations",
        "data": {
            "version": 7,
            "revoked": [{"jti": "tok-0001", "expires_at": "2026-12-01T00:00:00Z"}],
        },
    },
}


def write_command_vectors() -> None:
    """Write the commands vector (in vectors/commands/, apart from the envelope vectors)."""
    from wire.commands import Command, sign_command  # noqa: PLC0415 - only this vector

    key = Ed25519PrivateKey.from_private_bytes(COMMAND_SIGNING_SEED)
    command = Command.model_validate(COMMAND_CASE["body"])
    signed = sign_command(command, key)
    vector = {
        "name": COMMAND_CASE["name"],
        "about": COMMAND_CASE["about"],
        "cloud_ed25519_private": COMMAND_SIGNING_SEED.hex(),
        "cloud_ed25519_public": raw_public(key).hex(),
        "body": COMMAND_CASE["body"],
        "body_json": command.model_dump_json(),
        "signed_hex": signed.hex(),
    }
    path = HERE / "commands" / f"{COMMAND_CASE['name']}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(vector, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path} ({len(signed)} signed bytes)")


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["commands"]:
        write_command_vectors()
    else:
        main()
        write_command_vectors()
