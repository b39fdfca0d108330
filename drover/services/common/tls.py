"""Transport security of one service process: its mTLS identity for internal ports and channels.

Internal servers require a client certificate signed by the drover CA; internal channels present
the process's own certificate and check the server's against the role they expect to reach
(``grpc.ssl_target_name_override`` = ``<role>.drover``, so a compute agent cannot pose as the
scheduler whatever address it is reached by). ``tls.insecure`` turns all of it off (development).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from drover import pki
from drover.config import DroverConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Transport:
    """``role``'s credentials; ``ca`` empty means plaintext (``tls.insecure``)."""

    role: str
    ca: bytes = b""
    cert: bytes = b""
    key: bytes = b""

    @property
    def secure(self) -> bool:
        return bool(self.ca)

    def server_credentials(self) -> grpc.ServerCredentials | None:
        if not self.secure:
            return None
        return grpc.ssl_server_credentials([(self.key, self.cert)], root_certificates=self.ca,
                                           require_client_auth=True)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=self.ca, private_key=self.key,
                                            certificate_chain=self.cert)

    def channel_options(self, peer_role: str, options: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
        if not self.secure:
            return list(options)
        return [*options, ("grpc.ssl_target_name_override", pki.server_name(peer_role))]

    def channel(self, target: str, peer_role: str, options: Sequence[tuple[str, Any]]) -> grpc.aio.Channel:
        """An asyncio channel to a service of ``peer_role``."""
        opts = self.channel_options(peer_role, options)
        if not self.secure:
            return grpc.aio.insecure_channel(target, options=opts)
        return grpc.aio.secure_channel(target, self.channel_credentials(), options=opts)

    def sync_channel(self, target: str, peer_role: str) -> grpc.Channel:
        """A blocking channel (tools, tests, health probes)."""
        opts = self.channel_options(peer_role, [])
        if not self.secure:
            return grpc.insecure_channel(target, options=opts)
        return grpc.secure_channel(target, self.channel_credentials(), options=opts)


def paths(cfg: DroverConfig, role: str) -> tuple[Path, Path, Path]:
    """(CA, certificate, key) files of ``role`` as configured, defaulting into ``<data_dir>/pki``."""
    pki_dir = cfg.pki_path
    t = cfg.tls
    return (Path(t.ca) if t.ca else pki.cert_path(pki_dir, pki.CA_NAME),
            Path(t.cert) if t.cert else pki.cert_path(pki_dir, role),
            Path(t.key) if t.key else pki.key_path(pki_dir, role))


def transport(cfg: DroverConfig, role: str) -> Transport:
    """The transport of a process acting as ``role``; fails clearly when its files are missing."""
    if cfg.tls.insecure:
        log.warning("tls.insecure: internal services run in plaintext without peer checks (development only)")
        return Transport(role)
    ca, cert, key = paths(cfg, role)
    missing = [str(p) for p in (ca, cert, key) if not p.is_file()]
    if missing:
        raise SystemExit(f"{role}: TLS files missing: {', '.join(missing)} (run `drover pki init`, "
                         "or set tls.insecure for plaintext development use)")
    return Transport(role, ca.read_bytes(), cert.read_bytes(), key.read_bytes())


def public_api_credentials(cfg: DroverConfig) -> grpc.ServerCredentials | None:
    """Server-side TLS for the public API when configured (no client certificates asked)."""
    a = cfg.api
    if not (a.tls_cert or a.tls_key):
        if not is_loopback(a.listen):
            log.warning("the public API listens on %s in plaintext: tokens and data cross the network "
                        "unencrypted (set api.tls_cert and api.tls_key)", a.listen)
        return None
    if not (a.tls_cert and a.tls_key):
        raise SystemExit("api.tls_cert and api.tls_key go together")
    return grpc.ssl_server_credentials([(Path(a.tls_key).read_bytes(), Path(a.tls_cert).read_bytes())])


def is_loopback(listen: str) -> bool:
    host = listen.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name or a wildcard ("0.0.0.0", "[::]" parse; "" and names do not)
