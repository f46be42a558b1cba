"""Key generation, PEM key files (private ones mode 0600) and key ids.

A hub has an Ed25519 identity key (signs batches) and an X25519 key (receives sealed commands);
the cloud has an X25519 ingest key (opens batches) and an Ed25519 key (signs acks and commands).
A key id is the first 16 hex digits of SHA-256 over the raw 32-byte public key; the fingerprint
shown to people is all 64.
"""

from __future__ import annotations

import hashlib
import os
import stat
from typing import TYPE_CHECKING, TypeAlias, TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from wire.errors import KeyFileError

if TYPE_CHECKING:
    from pathlib import Path

PrivateKey: TypeAlias = Ed25519PrivateKey | X25519PrivateKey
PublicKey: TypeAlias = Ed25519PublicKey | X25519PublicKey

_Priv = TypeVar("_Priv", bound=Ed25519PrivateKey | X25519PrivateKey)
_Pub = TypeVar("_Pub", bound=Ed25519PublicKey | X25519PublicKey)

KEY_ID_HEX = 16
_MAX_KEY_FILE = 16 * 1024  # a PEM key is a few hundred bytes; refuse anything absurd before reading


def raw_public(key: PublicKey | PrivateKey) -> bytes:
    """The raw 32-byte public key of `key` (a private key's public half)."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey | X25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: PublicKey | PrivateKey) -> str:
    """Short id of a key (16 lowercase hex digits), as carried in envelope headers."""
    return fingerprint(key)[:KEY_ID_HEX]


def fingerprint(key: PublicKey | PrivateKey) -> str:
    """Full SHA-256 fingerprint of a key's raw public bytes, 64 lowercase hex digits."""
    return hashlib.sha256(raw_public(key)).hexdigest()


def private_pem(key: PrivateKey) -> bytes:
    """PKCS#8 PEM of a private key, unencrypted (protected by file mode and disk)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(key: PublicKey | PrivateKey) -> bytes:
    """SubjectPublicKeyInfo PEM of a key's public half."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey | X25519PrivateKey) else key
    return pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def save_private_key(key: PrivateKey, path: Path, *, overwrite: bool = False) -> None:
    """Write `key` to `path` as PEM, created with mode 0600 and fsynced; never replaces silently."""
    save_private_key_pem(private_pem(key), path, overwrite=overwrite)


def save_private_key_pem(pem: bytes, path: Path, *, overwrite: bool = False) -> None:
    """Write private-key PEM bytes to `path` (mode 0600, fsynced); never replaces silently."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask cannot widen it, but an existing tmp file could be wider
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    if not overwrite and path.exists():
        tmp.unlink()
        raise KeyFileError(f"{path} exists already; refusing to replace a key (use overwrite)")
    tmp.replace(path)


def save_public_key(key: PublicKey | PrivateKey, path: Path) -> None:
    """Write the public half of `key` to `path` as PEM (mode 0644)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(public_pem(key))
    tmp.chmod(0o644)
    tmp.replace(path)


def load_private_key(path: Path, kind: type[_Priv]) -> _Priv:
    """Load a PEM private key of type `kind`; refuse files readable by group or others."""
    data = _read_key_file(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyFileError(f"{path} is readable by others (mode {mode:04o}); run: chmod 600 {path}")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, kind):
        raise KeyFileError(f"{path} holds a {type(key).__name__}, expected {kind.__name__}")
    return key


def load_public_key(path: Path, kind: type[_Pub]) -> _Pub:
    """Load a PEM public key of type `kind`."""
    return parse_public_pem(_read_key_file(path), kind, source=str(path))


def parse_public_pem(data: bytes, kind: type[_Pub], *, source: str = "public key") -> _Pub:
    """Parse PEM bytes as a public key of type `kind`, or raise `KeyFileError`."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{source} is not a PEM public key: {exc}") from exc
    if not isinstance(key, kind):
        raise KeyFileError(f"{source} holds a {type(key).__name__}, expected {kind.__name__}")
    return key


def _read_key_file(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > _MAX_KEY_FILE:
            raise KeyFileError(f"{path} is {size} bytes; a PEM key is far smaller")
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise KeyFileError(f"key file {path} does not exist") from exc
    except PermissionError as exc:
        raise KeyFileError(f"key file {path} cannot be read: permission denied") from exc
    except IsADirectoryError as exc:
        raise KeyFileError(f"{path} is a directory, not a key file") from exc
