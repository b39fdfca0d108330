"""The built-in issuer's ECDSA P-256 (ES256) signing key, kept in the data dir (mode 0600, created once)."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

SIGNING_KEY_FILE = "auth/signing-key.pem"
ADMIN_TOKEN_FILE = "admin.token"


def signing_key_path(data_dir: Path) -> Path:
    return data_dir / SIGNING_KEY_FILE


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by the owner only, replacing it atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def load_signing_key(data_dir: Path) -> ec.EllipticCurvePrivateKey:
    """The existing key; FileNotFoundError when the issuer was never initialised here."""
    key = serialization.load_pem_private_key(signing_key_path(data_dir).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError(f"{signing_key_path(data_dir)} is not a P-256 private key")
    return key


def ensure_signing_key(data_dir: Path) -> ec.EllipticCurvePrivateKey:
    """Load the key, creating it on first start. Two processes racing here agree on one key:
    the file is created exclusively, and the loser reads the winner's."""
    path = signing_key_path(data_dir)
    if not path.exists():
        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        write_private(tmp, pem)
        try:
            os.link(tmp, path)  # atomic, and fails when another process got there first
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return load_signing_key(data_dir)


def key_id(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> str:
    """A stable id for the key (JWT ``kid``): the start of the public key's SHA-256."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest()[:12]).decode()
