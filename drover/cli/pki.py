"""`drover pki`: the CA and certificates that bind each internal service's identity (mTLS)."""

from __future__ import annotations

from typing import Annotated

import typer

from drover import pki
from drover.config import load_config

app = typer.Typer(help="Certificates for mTLS between the services.", no_args_is_help=True)


@app.command("init")
def init(
    data_dir: Annotated[str | None, typer.Option("--data-dir", help="Data dir; certificates go to <it>/pki.")] = None,
    config: Annotated[str | None, typer.Option("--config", help="TOML configuration file (env DROVER_CONFIG).")] = None,
    compute_host: Annotated[list[str] | None, typer.Option(
        "--compute-host", help="A host the local compute agent owns (repeatable; a trailing '*' owns <stem><n>). "
                               "Default: this machine's host name and the fake driver's <prefix>-*.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Make a new CA and reissue everything.")] = False,
) -> None:
    """Create the drover CA and a certificate per service role and for the local compute agent
    (what exists is kept; `drover up` runs this on first start)."""
    cfg = load_config(config, data_dir=data_dir)
    try:
        made = pki.init_for(cfg, force=force, compute_hosts=tuple(compute_host or ()))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for issued in made:
        typer.echo(f"wrote {issued.cert} (key {issued.key.name}, mode 0600)")
    if not made:
        typer.echo(f"{cfg.pki_path}: CA and certificates already present (--force reissues)")


@app.command("issue-compute")
def issue_compute(
    agent: Annotated[str, typer.Argument(help="The agent's name (its certificate's identity).")],
    host: Annotated[list[str], typer.Option("--host", help="A host it owns (repeatable; a trailing '*' owns "
                                                            "<stem><n>).")],
    data_dir: Annotated[str | None, typer.Option("--data-dir", help="Data dir holding pki/ (the CA).")] = None,
    config: Annotated[str | None, typer.Option("--config", help="TOML configuration file (env DROVER_CONFIG).")] = None,
) -> None:
    """Issue a certificate for another compute agent (pki/compute-<agent>.crt|.key); point that agent's
    tls.cert and tls.key at the pair and give it ca.crt."""
    cfg = load_config(config, data_dir=data_dir)
    try:
        issued = pki.issue(cfg.pki_path, pki.COMPUTE, agent=agent, hosts=tuple(host), name=f"compute-{agent}")
    except (ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {issued.cert} (key {issued.key.name}, mode 0600) for agent {agent}: {', '.join(host)}")
