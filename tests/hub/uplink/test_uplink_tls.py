"""The uplink over TLS with a client certificate, against a real Mosquitto TLS listener."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import CollectorRegistry
from services import MosquittoBroker, free_port
from uplink_testkit import Running, TestCloud, eventually, fill, uplink_config

from hub.uplink import UplinkService

pytestmark = pytest.mark.integration
NOW = dt.datetime.now(dt.UTC)


def _cert(subject: str, issuer_key, issuer_name, key, *, ca: bool, sans=()):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pki(directory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate for the hub."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("tecsa test ca", ca_key, None, ca_key, ca=True)
    files = {}
    for label, subject, sans in (
        ("server", "localhost", (x509.IPAddress(ipaddress.ip_address("127.0.0.1")),)),
        ("client", "hub-tls-01", ()),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(subject, ca_key, ca.subject, key, ca=False, sans=sans)
        files[f"{label}.crt"] = cert.public_bytes(serialization.Encoding.PEM)
        files[f"{label}.key"] = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    files["ca.crt"] = ca.public_bytes(serialization.Encoding.PEM)
    for name, data in files.items():
        (directory / name).write_bytes(data)
        (directory / name).chmod(0o600)
    return directory


@pytest.fixture
def tls_broker(tmp_path):
    pki = _pki(tmp_path / "pki")
    tls_port = free_port()
    extra = (
        f"listener {tls_port} 127.0.0.1\n"
        f"cafile {pki}/ca.crt\ncertfile {pki}/server.crt\nkeyfile {pki}/server.key\n"
        "require_certificate true\n"
    )
    with MosquittoBroker(tmp_path / "mosquitto", extra_config=extra) as broker:
        yield broker, tls_port, pki


async def test_readings_travel_over_tls_with_a_client_certificate(tls_broker, buffer, keys, hub_id):
    broker, tls_port, pki = tls_broker
    produced = await fill(buffer, 120)
    config = uplink_config(
        hub_id,
        tls_port,
        broker_url=f"mqtts://127.0.0.1:{tls_port}",
        tls_ca=pki / "ca.crt",
        tls_cert=pki / "client.crt",
        tls_key=pki / "client.key",
    )
    service = UplinkService(config, buffer, keys.uplink(), registry=CollectorRegistry())
    with TestCloud(broker.port, hub_id, keys) as cloud:  # the cloud side on the plain listener
        async with Running(service):
            await eventually(lambda: buffer.uplink_status().unsent == 0, what="all delivered")
    assert cloud.readings == produced


async def test_without_a_client_certificate_the_broker_refuses_and_nothing_is_delivered(
    tls_broker, buffer, keys, hub_id
):
    broker, tls_port, pki = tls_broker
    await fill(buffer, 10)
    config = uplink_config(
        hub_id, tls_port, broker_url=f"mqtts://127.0.0.1:{tls_port}", tls_ca=pki / "ca.crt"
    )
    registry = CollectorRegistry()
    service = UplinkService(config, buffer, keys.uplink(), registry=registry)
    with TestCloud(broker.port, hub_id, keys) as cloud:
        async with Running(service):
            await eventually(
                lambda: registry.get_sample_value("tecsa_uplink_breaker_state") == 1,
                what="the breaker open after refused handshakes",
            )
            assert not service.connected
            state = buffer.uplink_status().state
            assert state is not None
            assert "tls_cert" in (state.last_error or "")
    assert buffer.uplink_status().unsent == 10
    assert not cloud.readings
