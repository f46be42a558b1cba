from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from wire.tokens import (
    Claims,
    Role,
    RoleRefused,
    TokenError,
    TokenExpired,
    TokenInvalid,
    TokenRevoked,
    issue,
    verify,
)

CLOUD = Ed25519PrivateKey.from_private_bytes(bytes(range(129, 161)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(161, 193)))
NOW = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


def _token(**kw):
    args = {
        "agent_id": "agent-17",
        "role": Role.AGENT,
        "now": NOW,
        "lifetime": timedelta(hours=12),
        "token_id": "tok-1",
    } | kw
    key = args.pop("key", CLOUD)
    return issue(key, **args)


def test_round_trip_gives_the_claims():
    claims = verify(_token(), key=CLOUD.public_key(), now=NOW + timedelta(hours=1))
    assert claims == Claims(
        agent_id="agent-17",
        role=Role.AGENT,
        token_id="tok-1",
        issued_at=NOW,
        expires_at=NOW + timedelta(hours=12),
    )


def test_forged_with_another_key_is_invalid():
    with pytest.raises(TokenInvalid, match="alg/kid"):
        verify(_token(key=OTHER), key=CLOUD.public_key(), now=NOW)


def test_tampered_payload_is_invalid():
    header, _payload, sig = _token().split(".")
    other_payload = _token(agent_id="agent-99").split(".")[1]
    with pytest.raises(TokenInvalid, match="signature"):
        verify(f"{header}.{other_payload}.{sig}", key=CLOUD.public_key(), now=NOW)


def test_expired_and_not_yet_valid_with_clock_skew():
    token = _token()
    verify(token, key=CLOUD.public_key(), now=NOW + timedelta(hours=12, minutes=4))  # skew
    with pytest.raises(TokenExpired, match="expired"):
        verify(token, key=CLOUD.public_key(), now=NOW + timedelta(hours=12, minutes=6))
    with pytest.raises(TokenExpired, match="not valid yet"):
        verify(token, key=CLOUD.public_key(), now=NOW - timedelta(minutes=6))


def test_revoked():
    with pytest.raises(TokenRevoked):
        verify(_token(), key=CLOUD.public_key(), now=NOW, revoked={"tok-1"})


def test_wrong_role_is_403():
    with pytest.raises(RoleRefused) as info:
        verify(_token(), key=CLOUD.public_key(), now=NOW, roles={Role.TECHNICIAN})
    assert info.value.status == 403
    assert TokenExpired("x").status == 401


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"agent_id": ""}, "agent_id"),
        ({"agent_id": "has space"}, "agent_id"),
        ({"lifetime": timedelta(days=40)}, "lifetime"),
        ({"lifetime": timedelta(0)}, "lifetime"),
    ],
)
def test_issue_refuses_bad_arguments(kw, reason):
    with pytest.raises(ValueError, match=reason):
        _token(**kw)


@pytest.mark.parametrize(
    "token",
    ["", "a.b", "a.b.c", "x" * 3000, "eyJhbGciOiJFZERTQSJ9.e30.AAAA", "..", "a.b.c.d"],
)
def test_garbage_is_invalid(token):
    with pytest.raises(TokenInvalid):
        verify(token, key=CLOUD.public_key(), now=NOW)


@given(st.text(max_size=300))
def test_any_string_raises_only_token_errors(text):
    with contextlib.suppress(TokenError):
        verify(text, key=CLOUD.public_key(), now=NOW)
