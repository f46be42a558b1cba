"""The hub's TLS certificate: self-signed, made on the hub, pinned by phones by fingerprint.

Phones find the SHA-256 fingerprint of the certificate (DER) in the hub's zeroconf TXT record and
pin it; no certificate authority is involved on a health post's LAN. ECDSA P-256, which every
phone TLS stack supports; valid ten years (a hub outlives a typical CA cycle; rotation is
re-provisioning).
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from wire.keys import save_private_key_pem

if TYPE_CHECKING:
    from pathlib import Path

CERT_FILE = "tls.crt.pem"
KEY_FILE = "tls.key.pem"
VALIDITY = timedelta(days=3650)


@dataclass(frozen=True, slots=True)
class TlsIdentity:
    """Where the certificate and key are, and the fingerprint phones pin."""

    cert_path: Path
    key_path: Path
    fingerprint: str


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of the certificate's DER encoding, 64 lowercase hex digits."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def ensure_certificate(
    directory: Path, *, hub_id: str, now: datetime, addresses: tuple[str, ...] = ()
) -> TlsIdentity:
    """The hub's certificate in `directory`, created (key mode 0600) if it does not exist yet."""
    cert_path, key_path = directory / CERT_FILE, directory / KEY_FILE
    if not cert_path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{hub_id}.local")])
        alt: list[x509.GeneralName] = [x509.DNSName(f"{hub_id}.local"), x509.DNSName("localhost")]
        alt += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        save_private_key_pem(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            key_path,
        )
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return TlsIdentity(cert_path, key_path, fingerprint(cert_path.read_bytes()))
