"""drover configuration: one TOML file, overridden by DROVER_* environment variables and flags.

Precedence (highest first): explicit overrides (CLI flags) > environment
(``DROVER_API__LISTEN=…``, nested with ``__``) > TOML file (``--config`` or
``DROVER_CONFIG``) > defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class ServiceEndpoint(BaseModel):
    listen: str = "127.0.0.1:0"
    # Prometheus metrics HTTP port (0: disabled), and the address it binds (loopback unless opened up).
    metrics_port: int = 0
    metrics_listen: str = "127.0.0.1"


class ApiConfig(ServiceEndpoint):
    listen: str = "127.0.0.1:8774"
    metrics_port: int = 9774
    # Where the API finds the conductor (casts) and scheduler (host listing).
    conductor: str = "127.0.0.1:8781"
    scheduler: str = "127.0.0.1:8782"
    default_page_size: int = 100
    max_page_size: int = 1000
    # Serve the public API over TLS with this certificate and key (PEM files); both empty: plaintext
    # (fine on loopback, warned about beyond it).
    tls_cert: str = ""
    tls_key: str = ""
    # Directories an admin may register host files from as images (CreateImage). Empty: the data
    # dir's images/ and the default image's build directory (DROVER_IMAGE_DIR or images/build).
    image_dirs: list[str] = Field(default_factory=list)
    # Largest image a project may upload (UploadImage), bytes.
    max_image_upload_bytes: int = 8 * 1024**3
    # An upload that sends nothing for this long (seconds) is abandoned and its partial file removed,
    # so stalled uploads cannot pile up open files and disk.
    upload_idle_timeout: float = 60.0


class ConductorConfig(ServiceEndpoint):
    listen: str = "127.0.0.1:8781"
    metrics_port: int = 9781
    scheduler: str = "127.0.0.1:8782"
    # Deadline of the SelectDestinations call, seconds.
    select_timeout: float = 10.0
    # A build that makes no progress for this long goes to ERROR (Nova's instance_build_timeout).
    build_timeout: float = 600.0
    # Builds assigned to a host but silent for this long are cast to it again (computes dedupe).
    orphan_timeout: float = 60.0
    # Reschedule a failed build to an alternate host, up to this many attempts in all.
    max_attempts: int = 3


class SchedulerConfigModel(ServiceEndpoint):
    listen: str = "127.0.0.1:8782"
    metrics_port: int = 9782
    enabled_filters: list[str] | None = None
    weighers: dict[str, float] | None = None
    host_subset_size: int = 1
    max_attempts: int = 3
    max_io_ops_per_host: int = 8
    max_instances_per_host: int = 50
    isolated_images: list[str] = Field(default_factory=list)
    isolated_hosts: list[str] = Field(default_factory=list)
    restrict_isolated_hosts_to_isolated_images: bool = True
    # A host that has not reported for this long is down (Nova's service_down_time).
    service_down_time: float = 60.0
    # After a start, selects are answered UNAVAILABLE until every host holding allocations in the
    # store has reported (the conductor retries), or at most this long.
    warmup_timeout: float = 30.0


class ComputeConfig(ServiceEndpoint):
    listen: str = "127.0.0.1:8783"
    metrics_port: int = 9783
    # Address other services use to reach this agent (defaults to listen).
    advertise: str = ""
    conductor: str = "127.0.0.1:8781"
    scheduler: str = "127.0.0.1:8782"
    driver: str = "fake"
    # Fake driver: how many hosts this one agent presents, and their size.
    fake_hosts: int = 1
    fake_host_prefix: str = "fake-host"
    fake_vcpus: int = 16
    fake_memory_mb: int = 65536
    fake_disk_gb: int = 1024
    # what the fake hosts report besides (Nova's fake driver: x86_64 / fake / hvm)
    fake_traits: list[str] = Field(default_factory=list)
    fake_cpu_info: str = ""
    fake_supported_instances: list[tuple[str, str, str]] = Field(default_factory=lambda: [("x86_64", "fake", "hvm")])
    # Fake driver: seconds each spawn step takes (simulated work).
    fake_step_seconds: float = 0.0
    availability_zone: str = "nova"
    cpu_allocation_ratio: float = 16.0
    ram_allocation_ratio: float = 1.5
    disk_allocation_ratio: float = 1.0
    reserved_host_memory_mb: int = 512
    reserved_host_disk_gb: int = 0
    report_interval: float = 10.0
    # Nova's sync_power_state_interval: seconds between comparing every guest's power state with
    # what was last reported (catches a missed lifecycle event, or an agent restart); <= 0: off.
    sync_power_state_interval: float = 60.0
    # The host name this agent reports (libvirt driver; Nova's CONF.host). Default: the machine's.
    host: str = ""
    # libvirt driver
    libvirt_uri: str = "qemu:///system"
    # Guest NIC: auto, user (QEMU user-mode networking) or none.
    nic: str = "auto"
    virt_type: str = "auto"
    instances_path: str = ""
    boot_timeout: float = 120.0


class TlsConfig(BaseModel):
    """mTLS between the internal services (conductor, scheduler, compute and the API as their client).

    Every internal port requires a client certificate signed by ``ca``; each service presents its
    own. Empty paths mean ``<data_dir>/pki/ca.crt`` and ``<data_dir>/pki/<role>.crt|.key``, which
    ``drover pki init`` (and ``drover up`` on first start) creates.
    """

    ca: str = ""
    cert: str = ""
    key: str = ""
    # Plaintext internal ports with no peer checks: anyone who reaches a port can forge anything.
    # Only for explicit development use.
    insecure: bool = False


class QuotaConfig(BaseModel):
    """Per-project limits (-1: unlimited), as Nova's quota defaults."""

    instances: int = -1
    cores: int = -1
    ram_mb: int = -1


class OidcIssuerConfig(BaseModel):
    """An external OIDC issuer whose tokens the API accepts (verified by its JWKS)."""

    issuer: str
    audience: str
    # JWKS document: a file path or an https:// URL (fetched at start, refreshed on an unknown key id).
    jwks: str
    # Claims that carry the project, the user and the roles.
    project_claim: str = "project_id"
    user_claim: str = "sub"
    roles_claim: str = "roles"


class AuthConfig(BaseModel):
    """Bearer tokens on the public API: drover's built-in issuer, plus optional OIDC issuers."""

    # The built-in issuer's name and the audience its tokens carry (and the API accepts).
    issuer: str = "drover"
    audience: str = "drover"
    # Lifetime of the admin token `drover up` writes to <data_dir>/admin.token, seconds.
    admin_token_ttl: float = 30 * 24 * 3600.0
    # Clock skew allowed on exp/nbf/iat, seconds.
    leeway: float = 30.0
    oidc: list[OidcIssuerConfig] = Field(default_factory=list)
    # TOML or YAML file overriding the default API policy rules (`drover policy list` shows them).
    policy_file: str = ""


class DroverConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DROVER_", env_nested_delimiter="__", extra="ignore")

    data_dir: str = ".drover"
    # SQLAlchemy URL; empty: SQLite (WAL) in data_dir.
    database_url: str = ""
    log_level: str = "INFO"
    api: ApiConfig = Field(default_factory=ApiConfig)
    conductor: ConductorConfig = Field(default_factory=ConductorConfig)
    scheduler: SchedulerConfigModel = Field(default_factory=SchedulerConfigModel)
    compute: ComputeConfig = Field(default_factory=ComputeConfig)
    quota: QuotaConfig = Field(default_factory=QuotaConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    tls: TlsConfig = Field(default_factory=TlsConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = os.environ.get("DROVER_CONFIG", "")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    @property
    def pki_path(self) -> Path:
        return self.data_path / "pki"

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_path / 'drover.db'}"


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(config_file: str | None = None, **overrides: Any) -> DroverConfig:
    """Load configuration; ``overrides`` are nested dicts from flags (None values ignored)."""
    if config_file:
        os.environ["DROVER_CONFIG"] = str(Path(config_file).resolve())
    cfg = DroverConfig()
    clean = _strip_none(overrides)
    if clean:
        cfg = DroverConfig.model_validate(_merge(cfg.model_dump(), clean))
    return cfg


def _strip_none(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            nested = _strip_none(v)
            if nested:
                out[k] = nested
        elif v is not None:
            out[k] = v
    return out
