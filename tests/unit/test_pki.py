"""drover pki: the chain verifies, keys are private, and the identity a peer presents is the one issued."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import PolicyBuilder, Store

from drover import pki
from drover.services.common.peer_auth import Peer, peer_from_auth_context


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki") / "pki"
    pki.init(d, compute_agent="agent-1", compute_hosts=("fake-host-*", "node1"))
    return d


def _cert(pki_dir: Path, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pki.cert_path(pki_dir, name).read_bytes())


def _auth_context(cert: x509.Certificate) -> dict[str, list[bytes]]:
    """What gRPC's TLS stack reports for a peer presenting ``cert`` (the properties peer_auth reads)."""
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return {"transport_security_type": [b"ssl"],
            "peer_spiffe_id": [u.encode() for u in uris] if len(uris) == 1 else [],
            "peer_dns": [d.encode() for d in san.get_values_for_type(x509.DNSName)]}


@pytest.mark.parametrize("name", [*pki.SERVICE_ROLES, pki.COMPUTE])
def test_each_certificate_chains_to_the_ca_for_client_and_server_use(pki_dir: Path, name: str) -> None:
    ca = _cert(pki_dir, pki.CA_NAME)
    store = Store([ca])
    leaf = _cert(pki_dir, name)
    role = name
    client = PolicyBuilder().store(store).build_client_verifier().verify(leaf, [])
    assert client.chain[-1] == ca
    server = PolicyBuilder().store(store).build_server_verifier(x509.DNSName(pki.server_name(role)))
    assert server.verify(leaf, [])[-1] == ca
    # The CA is a CA, the leaves are not.
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_a_certificate_from_another_ca_does_not_verify(pki_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    pki.init(other, compute_agent="x", compute_hosts=("x",))
    verifier = PolicyBuilder().store(Store([_cert(pki_dir, pki.CA_NAME)])).build_client_verifier()
    with pytest.raises(x509.verification.VerificationError):
        verifier.verify(_cert(other, "conductor"), [])


def test_keys_are_private_and_ec(pki_dir: Path) -> None:
    assert stat.S_IMODE(pki_dir.stat().st_mode) == 0o700
    for name in (pki.CA_NAME, *pki.SERVICE_ROLES, pki.COMPUTE):
        path = pki.key_path(pki_dir, name)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        key = load_pem_private_key(path.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        cert = _cert(pki_dir, name)
        assert cert.public_key() == key.public_key(), f"{name}: key does not match its certificate"


@pytest.mark.parametrize("role", pki.SERVICE_ROLES)
def test_a_service_certificate_names_its_role(pki_dir: Path, role: str) -> None:
    cert = _cert(pki_dir, role)
    assert cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == role
    assert peer_from_auth_context(_auth_context(cert)) == Peer(role)


def test_the_compute_certificate_names_its_agent_and_hosts(pki_dir: Path) -> None:
    peer = peer_from_auth_context(_auth_context(_cert(pki_dir, pki.COMPUTE)))
    assert peer == Peer("compute", "agent-1", ("fake-host-*", "node1"))
    assert peer.owns("node1") and peer.owns("fake-host-0") and peer.owns("fake-host-00042")
    assert not peer.owns("node2") and not peer.owns("fake-host-") and not peer.owns("fake-host-1x")
    assert not peer.owns("") and not peer.owns("compute.drover") and not peer.owns("fake-host-1.evil")


def test_only_computes_own_hosts() -> None:
    assert not Peer("conductor").owns("node1")
    assert not Peer("conductor", hosts=("node1",)).owns("node1")


def test_existing_files_are_kept_and_force_reissues(pki_dir: Path, tmp_path: Path) -> None:
    d = tmp_path / "pki"
    pki.init(d, compute_agent="a", compute_hosts=("h",))
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    assert pki.init(d, compute_agent="a", compute_hosts=("h",)) == []
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before
    made = pki.init(d, compute_agent="a", compute_hosts=("h2",), reissue_compute=True)
    assert [i.name for i in made] == [pki.COMPUTE]
    assert pki.cert_path(d, pki.CA_NAME).read_bytes() == before["ca.crt"]
    pki.init(d, compute_agent="a", compute_hosts=("h",), force=True)
    assert pki.cert_path(d, pki.CA_NAME).read_bytes() != before["ca.crt"]


@pytest.mark.parametrize("auth", [
    {},  # plaintext
    {"transport_security_type": [b"ssl"]},  # no certificate identity
    {"transport_security_type": [b"ssl"], "peer_spiffe_id": [b"spiffe://other/conductor"]},
    {"transport_security_type": [b"ssl"], "peer_spiffe_id": [b"spiffe://drover/root"]},
    {"transport_security_type": [b"ssl"], "peer_spiffe_id": [b"spiffe://drover/compute"]},  # agent missing
    {"transport_security_type": [b"ssl"], "peer_spiffe_id": [b"spiffe://drover/api/x"]},
])
def test_no_drover_identity_is_no_peer(auth: dict[str, list[bytes]]) -> None:
    assert peer_from_auth_context(auth) is None


def test_issue_refuses_what_would_blur_identities(pki_dir: Path) -> None:
    with pytest.raises(ValueError):
        pki.issue(pki_dir, "root")
    with pytest.raises(ValueError):
        pki.issue(pki_dir, "compute", agent="a")  # no hosts
    with pytest.raises(ValueError):
        pki.issue(pki_dir, "api", hosts=("h",))
    for bad in ("a*b", "scheduler.drover", ""):
        with pytest.raises(ValueError):
            pki.issue(pki_dir, "compute", agent="a", hosts=(bad,), name="bad")
