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
    # Prometheus metrics HTTP port (0: disabled).
    metrics_port: int = 0


class ApiConfig(ServiceEndpoint):
    listen: str = "127.0.0.1:8774"
    metrics_port: int = 9774
    # Where the API finds the conductor (casts) and scheduler (host listing).
    conductor: str = "127.0.0.1:8781"
    scheduler: str = "127.0.0.1:8782"
    default_page_size: int = 100
    max_page_size: int = 1000


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


class QuotaConfig(BaseModel):
    """Per-project limits (-1: unlimited), as Nova's quota defaults."""

    instances: int = -1
    cores: int = -1
    ram_mb: int = -1


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
