"""drover's own PKI: a CA and one certificate per service role and per compute agent.

Identity is bound to each certificate in two places that gRPC's TLS stack exposes:

* one URI SAN, the SPIFFE-style identity ``spiffe://drover/<role>`` (``api``, ``conductor``,
  ``scheduler``, ``operator``) or ``spiffe://drover/compute/<agent>`` for a compute agent;
* DNS SANs: ``<role>.drover``, the name a client checks the server against (channels set
  ``grpc.ssl_target_name_override``, so services may listen on any address), and, on a compute
  agent's certificate, the hosts it owns.

A compute agent gets one certificate listing its hosts. One agent of the fake driver presents a
whole fleet (``fake-host-0`` … ``fake-host-9999``): listing every name would make a certificate
of hundreds of kilobytes, above what TLS stacks accept in a handshake, so a host entry may end in
``*``, owning the stem followed by a decimal number (``fake-host-*`` owns ``fake-host-17``). The
fleet can then grow (``--fake-hosts``) without reissuing the certificate; a real (libvirt) agent
lists its one exact host name.

Keys are EC P-256 (small, fast handshakes), written with mode 0600 in a 0700 directory.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from drover.config import DroverConfig

SERVICE_ROLES = ("api", "conductor", "scheduler", "operator")
COMPUTE = "compute"
ROLES = (*SERVICE_ROLES, COMPUTE)
TRUST_DOMAIN = "drover"
SPIFFE_PREFIX = f"spiffe://{TRUST_DOMAIN}/"
CA_NAME = "ca"
CA_YEARS = 10
LEAF_DAYS = 825


def server_name(role: str) -> str:
    """The DNS name a client expects in the certificate of a server of ``role``."""
    return f"{role}.{TRUST_DOMAIN}"


def spiffe_id(role: str, agent: str = "") -> str:
    return f"{SPIFFE_PREFIX}{role}/{agent}" if agent else f"{SPIFFE_PREFIX}{role}"


def cert_path(pki_dir: Path, name: str) -> Path:
    return pki_dir / f"{name}.crt"


def key_path(pki_dir: Path, name: str) -> Path:
    return pki_dir / f"{name}.key"


@dataclass(frozen=True)
class Issued:
    name: str
    cert: Path
    key: Path


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 from the start (never world-readable, not even briefly)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _load_ca(pki_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(cert_path(pki_dir, CA_NAME).read_bytes())
    key = serialization.load_pem_private_key(key_path(pki_dir, CA_NAME).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path(pki_dir, CA_NAME)} is not an EC key")
    return cert, key


def create_ca(pki_dir: Path) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "drover"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "drover CA")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365 * CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pki_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(pki_dir, 0o700)
    _write_private(key_path(pki_dir, CA_NAME), _key_pem(key))
    _write_public(cert_path(pki_dir, CA_NAME), cert.public_bytes(serialization.Encoding.PEM))
    return Issued(CA_NAME, cert_path(pki_dir, CA_NAME), key_path(pki_dir, CA_NAME))


def issue(pki_dir: Path, role: str, *, agent: str = "", hosts: tuple[str, ...] = (), name: str = "") -> Issued:
    """Issue a certificate for ``role`` (a compute ``agent`` owning ``hosts``), signed by the CA."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    if role == COMPUTE and not (agent and hosts):
        raise ValueError("a compute certificate names its agent and the hosts it owns")
    if role != COMPUTE and hosts:
        raise ValueError("only a compute certificate owns hosts")
    for h in hosts:
        if not h or "*" in h[:-1] or h.endswith(f".{TRUST_DOMAIN}"):
            raise ValueError(f"bad host name {h!r} (a name, or a stem ending in '*')")
    ca_cert, ca_key = _load_ca(pki_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "drover"),
                         x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
                         x509.NameAttribute(NameOID.COMMON_NAME, agent or role)])
    sans: list[x509.GeneralName] = [
        x509.UniformResourceIdentifier(spiffe_id(role, agent)),
        x509.DNSName(server_name(role)),
        *(x509.DNSName(h) for h in hosts),
    ]
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=LEAF_DAYS), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        # Every service is both a server and a client of the others.
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    file_name = name or role
    _write_private(key_path(pki_dir, file_name), _key_pem(key))
    _write_public(cert_path(pki_dir, file_name), cert.public_bytes(serialization.Encoding.PEM))
    return Issued(file_name, cert_path(pki_dir, file_name), key_path(pki_dir, file_name))


def init(pki_dir: Path, *, compute_agent: str, compute_hosts: tuple[str, ...], force: bool = False,
         reissue_compute: bool = False) -> list[Issued]:
    """Create what is missing: the CA, one certificate per service role and the local compute
    agent's (``compute.crt``). Existing files are kept unless ``force`` (everything) or
    ``reissue_compute`` (the agent's, for new hosts); returns what was made."""
    made: list[Issued] = []
    if force or not (cert_path(pki_dir, CA_NAME).exists() and key_path(pki_dir, CA_NAME).exists()):
        made.append(create_ca(pki_dir))
        force = True  # certificates of an old CA would not verify against the new one
    for role in SERVICE_ROLES:
        if force or not cert_path(pki_dir, role).exists():
            made.append(issue(pki_dir, role))
    if force or reissue_compute or not cert_path(pki_dir, COMPUTE).exists():
        made.append(issue(pki_dir, COMPUTE, agent=compute_agent, hosts=compute_hosts))
    return made


def local_compute_identity(cfg: DroverConfig) -> tuple[str, tuple[str, ...]]:
    """(agent name, hosts) of the compute agent configured on this machine: the libvirt host
    (``compute.host``, default the machine's name) and the fake driver's fleet (``<prefix>-*``)."""
    host = cfg.compute.host or socket.gethostname()
    return host, (f"{cfg.compute.fake_host_prefix}-*", host)


def init_for(cfg: DroverConfig, *, force: bool = False, compute_hosts: tuple[str, ...] = ()) -> list[Issued]:
    """``init`` in the configured data dir, for the local compute agent (or ``compute_hosts``)."""
    agent, hosts = local_compute_identity(cfg)
    return init(cfg.pki_path, compute_agent=agent, compute_hosts=compute_hosts or hosts, force=force,
                reissue_compute=bool(compute_hosts))
