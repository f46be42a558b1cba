"""The phones' API in process (FastAPI's test client): auth, errors and limits."""

from __future__ import annotations

import asyncio
import socket
import stat
from datetime import UTC, datetime, timedelta

import httpx2 as httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from hub.api.app import ApiContext, BodyLimit, HubStatus, create_app
from hub.api.server import serve_api
from hub.api.tls import ensure_certificate
from wire.tokens import Role, issue

CLOUD = Ed25519PrivateKey.from_private_bytes(bytes(range(129, 161)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(161, 193)))
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def _token(role=Role.AGENT, key=CLOUD, now=NOW, jti="t1"):
    return issue(
        key, agent_id="agent-17", role=role, now=now, lifetime=timedelta(hours=8), token_id=jti
    )


@pytest.fixture
def client():
    ctx = ApiContext(
        hub_id="hub-api-01",
        cloud_signing_key=CLOUD.public_key(),
        revoked=lambda: {"revoked-1"},
        status=lambda: HubStatus(backlog=12, at_capacity=False, capacity_hours_left=96.5),
        now=lambda: NOW + timedelta(hours=1),
        max_body=1024,
    )
    return TestClient(create_app(ctx))


def _auth(token):
    return {"Authorization": f"Bearer {token}"}


def test_hub_info_for_a_valid_token(client):
    response = client.get("/api/v1/hub", headers=_auth(_token()))
    assert response.status_code == 200
    assert response.json() == {
        "hub_id": "hub-api-01",
        "api_version": "1",
        "hub_time": "2026-11-28T10:00:00Z",
        "agent_id": "agent-17",
        "role": "agent",
        "backlog": 12,
        "at_capacity": False,
        "capacity_hours_left": 96.5,
    }


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, "TokenInvalid"),
        ({"Authorization": "Basic abc"}, "TokenInvalid"),
        (_auth("not.a.token"), "TokenInvalid"),
        (_auth(_token(key=OTHER)), "TokenInvalid"),
        (_auth(_token(now=NOW - timedelta(days=1))), "TokenExpired"),
        (_auth(_token(jti="revoked-1")), "TokenRevoked"),
    ],
)
def test_bad_tokens_are_401_with_the_reason(client, headers, error):
    response = client.get("/api/v1/hub", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == error
    assert response.headers["www-authenticate"] == "Bearer"


def test_oversized_bodies_are_413_before_reading(client):
    response = client.post("/api/v1/hub", headers=_auth(_token()), content=b"x" * 5000)
    assert response.status_code == 413
    assert response.json()["error"] == "TooLarge"


def test_a_streamed_body_without_length_is_cut_at_the_limit():
    async def reads_everything(_scope, receive, send):
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(len(body)).encode()})

    client = TestClient(BodyLimit(reads_everything, max_body=1024))

    def chunks(n):
        for _ in range(n):
            yield b"y" * 500

    assert client.post("/", content=chunks(2)).text == "1000"
    over = client.post("/", content=chunks(10))
    assert over.status_code == 413
    assert over.json()["error"] == "TooLarge"


def test_unknown_paths_and_methods_are_json_errors_not_500(client):
    missing = client.get("/api/v1/nope", headers=_auth(_token()))
    assert (missing.status_code, missing.json()["error"]) == (404, "NotFound")
    wrong = client.post("/api/v1/hub", headers=_auth(_token()), content=b"{}")
    assert (wrong.status_code, wrong.json()["error"]) == (405, "MethodNotAllowed")
    assert wrong.json()["message"] == "Method Not Allowed"


def test_openapi_is_published_under_v1(client):
    spec = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/hub" in spec["paths"]


def test_certificate_is_made_once_with_a_pinned_fingerprint(tmp_path):
    first = ensure_certificate(tmp_path, hub_id="hub-api-01", now=NOW, addresses=("127.0.0.1",))
    again = ensure_certificate(tmp_path, hub_id="hub-api-01", now=NOW + timedelta(days=1))
    assert first == again
    assert len(first.fingerprint) == 64
    assert stat.S_IMODE(first.key_path.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(first.cert_path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "hub-api-01.local" in names.get_values_for_type(x509.DNSName)


async def test_a_busy_port_leaves_the_hub_running_without_its_api(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        tls = ensure_certificate(tmp_path, hub_id="hub-api-01", now=NOW)
        app = create_app(
            ApiContext(
                "hub-api-01",
                CLOUD.public_key(),
                frozenset,
                lambda: HubStatus(0, at_capacity=False, capacity_hours_left=None),
            )
        )
        # Returns (uvicorn could not listen) instead of ending the event loop with SystemExit.
        await asyncio.wait_for(
            serve_api(app, host="127.0.0.1", port=port, tls=tls, stop=asyncio.Event()), 15
        )


async def test_large_bodies_are_read_a_few_at_a_time_small_ones_are_not_held():
    inside = peak = 0

    async def slow_reader(_scope, receive, send):
        nonlocal inside, peak
        inside += 1
        peak = max(peak, inside)
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        await asyncio.sleep(0.05)  # the work a bulk-sync does while holding its body
        inside -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    limited = BodyLimit(slow_reader, max_body=1 << 20, large=1000, max_large=2)
    transport = httpx.ASGITransport(app=limited)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        large = await asyncio.gather(*(client.post("/", content=b"x" * 5000) for _ in range(6)))
        assert [r.status_code for r in large] == [200] * 6
        assert peak == 2  # six large bodies, never more than two read at once
        peak = 0
        small = await asyncio.gather(*(client.post("/", content=b"x" * 10) for _ in range(6)))
        assert [r.status_code for r in small] == [200] * 6
        assert peak == 6  # small requests are not queued behind anything
