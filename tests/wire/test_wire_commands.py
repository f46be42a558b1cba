"""Signed commands on down/cmd: framing, signature, addressee, expiry, data schemas, the vector."""

from __future__ import annotations

import contextlib
import json
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from wire.commands import (
    CLOCK_SKEW,
    MAX_COMMAND,
    Command,
    CommandKind,
    ModelReleaseData,
    RevocationList,
    RevokedToken,
    new_command,
    sign_command,
    verify_command,
)
from wire.errors import (
    DecodeError,
    Expired,
    IntegrityError,
    Misdirected,
    TooLarge,
    UnsupportedVersion,
    WireError,
)
from wire.plans import Plan, PlanKind, PlanSnapshot

CLOUD = Ed25519PrivateKey.from_private_bytes(bytes(range(129, 161)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(161, 193)))
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
VECTOR = Path(__file__).parent / "vectors" / "commands" / "cmd-v1-revocations.json"


def _revocations(version=3, jtis=("tok-a", "tok-b")):
    return RevocationList(
        version=version,
        revoked=tuple(RevokedToken(jti=j, expires_at=NOW + timedelta(days=2)) for j in jtis),
    )


def _command(kind=CommandKind.REVOCATIONS, data=None, hub_id="hub-1", now=NOW, days=7, n=0):
    return new_command(
        kind,
        data if data is not None else _revocations(),
        hub_id=hub_id,
        now=now,
        lifetime=timedelta(days=days),
        rand=n.to_bytes(10, "big"),
    )


def _verify(data, *, key=CLOUD, hub_id="hub-1", now=NOW):
    return verify_command(data, cloud_key=key.public_key(), hub_id=hub_id, now=now)


def _resign(body: bytes, key=CLOUD) -> bytes:
    signed = b"TSC\x01" + struct.pack(">I", len(body)) + body
    return signed + key.sign(signed)


def test_round_trip_gives_the_command_and_its_typed_data():
    command = _command()
    got = _verify(sign_command(command, CLOUD))
    assert got == command
    assert got.version == 3
    assert got.revocations() == _revocations()
    with pytest.raises(ValueError, match="not plans"):
        got.plans()


def test_plans_and_model_release_round_trip():
    plan = Plan(id="polio-2026", title="Polio round 2", kind=PlanKind.CAMPAIGN, starts_at=NOW)
    plans = _command(CommandKind.PLANS, PlanSnapshot(version=4, plans=(plan,)))
    assert _verify(sign_command(plans, CLOUD)).plans().plans == (plan,)
    release = _command(CommandKind.MODEL_RELEASE, ModelReleaseData(release="AAEC"), n=1)
    got = _verify(sign_command(release, CLOUD))
    assert got.model_release().release_bytes() == b"\x00\x01\x02"
    assert got.version is None


def test_new_command_refuses_data_of_another_kind():
    with pytest.raises(TypeError, match="RevocationList"):
        _command(CommandKind.REVOCATIONS, PlanSnapshot(version=1))


def test_forged_command_is_refused():
    with pytest.raises(IntegrityError, match="signature"):
        _verify(sign_command(_command(), OTHER))


def test_command_for_another_hub_is_refused():
    data = sign_command(_command(hub_id="hub-2"), CLOUD)
    with pytest.raises(Misdirected, match="addressed to hub hub-2") as caught:
        _verify(data)
    assert (caught.value.addressed_to, caught.value.expected) == ("hub-2", "hub-1")


def test_expiry_allows_the_clock_skew_and_no_more():
    data = sign_command(_command(days=1), CLOUD)
    expiry = NOW + timedelta(days=1)
    assert _verify(data, now=expiry + CLOCK_SKEW).id == _command(days=1).id
    with pytest.raises(Expired, match="expired"):
        _verify(data, now=expiry + CLOCK_SKEW + timedelta(seconds=1))


def test_oversized_input_is_refused_before_any_work():
    with pytest.raises(TooLarge) as caught:
        _verify(b"\x00" * (MAX_COMMAND + 1))
    assert (caught.value.size, caught.value.limit) == (MAX_COMMAND + 1, MAX_COMMAND)


def test_sign_refuses_a_command_beyond_the_cap():
    many = [f"tok-{i:07d}" for i in range(30_000)]
    with pytest.raises(TooLarge):
        sign_command(_command(data=_revocations(jtis=many)), CLOUD)


@pytest.mark.parametrize(
    ("mutate", "error", "match"),
    [
        (lambda d: d[:10], DecodeError, "too short"),
        (lambda d: b"XSC" + d[3:], DecodeError, "bad magic"),
        (lambda d: d[:3] + b"\x02" + d[4:], UnsupportedVersion, "version 2"),
        (lambda d: d + b"\x00", DecodeError, "length mismatch"),
        (lambda d: d[:20] + bytes([d[20] ^ 1]) + d[21:], IntegrityError, "signature"),
    ],
    ids=["short", "magic", "version", "length", "tampered"],
)
def test_bad_framing_is_refused(mutate, error, match):
    with pytest.raises(error, match=match):
        _verify(mutate(sign_command(_command(), CLOUD)))


def _body(**changes) -> bytes:
    body = json.loads(_command().model_dump_json())
    body.update(changes)
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"kind": "reboot"}, "kind"),
        ({"data": {"version": 1, "revoked": "all"}}, "invalid command"),
        ({"data": {"version": -1, "revoked": []}}, "invalid command"),
        ({"data": {"version": 5.0, "revoked": []}}, "invalid command"),
        ({"id": "00000000-0000-4000-8000-000000000000"}, "UUIDv7"),
        ({"expires_at": "2026-11-27T00:00:00Z"}, "expires_at"),
        ({"expires_at": "2027-06-01T00:00:00Z"}, "31 days"),
        ({"v": 2}, "v"),
        ({"extra": 1}, "extra"),
        ({"hub_id": "Hub One"}, "hub_id"),
    ],
    ids=[
        "kind",
        "data",
        "version",
        "float-version",
        "uuid4",
        "expired-before-issued",
        "lifetime",
        "v",
        "extra",
        "hub",
    ],
)
def test_signed_but_malformed_bodies_are_refused_as_decode_errors(changes, match):
    with pytest.raises(DecodeError, match=match):
        _verify(_resign(_body(**changes)))


def test_non_json_body_is_a_decode_error():
    with pytest.raises(DecodeError, match="invalid command"):
        _verify(_resign(b"\xff not json"))


def test_known_answer_vector():
    vector = json.loads(VECTOR.read_text(encoding="utf-8"))
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(vector["cloud_ed25519_private"]))
    public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(vector["cloud_ed25519_public"]))
    command = Command.model_validate(vector["body"])
    assert command.model_dump_json() == vector["body_json"]
    assert sign_command(command, key).hex() == vector["signed_hex"]
    got = verify_command(
        bytes.fromhex(vector["signed_hex"]), cloud_key=public, hub_id="hub-vector-01", now=NOW
    )
    assert got.revocations().revoked[0].jti == "tok-0001"


@given(st.binary(max_size=400))
def test_only_wire_errors_escape_on_random_bytes(data):
    with contextlib.suppress(WireError):
        _verify(data)


@given(st.integers(min_value=0, max_value=400), st.binary(min_size=1, max_size=8))
def test_only_wire_errors_escape_on_damaged_commands(at, junk):
    data = bytearray(sign_command(_command(), CLOUD))
    data[at % len(data) : at % len(data) + len(junk)] = junk
    with contextlib.suppress(WireError):
        _verify(bytes(data))


def test_plan_window_and_unique_ids():
    with pytest.raises(ValueError, match="before starts_at"):
        Plan(id="p", title="t", kind="visit", starts_at=NOW, ends_at=NOW - timedelta(seconds=1))
    plan = Plan(id="p", title="t", kind="visit", starts_at=NOW, agent_ids=("agent-1",))
    with pytest.raises(ValueError, match="appears twice"):
        PlanSnapshot(version=1, plans=(plan, plan))
    assert plan.for_agent("agent-1")
    assert not plan.for_agent("agent-2")
    assert plan.active_at(NOW + timedelta(days=400))
