"""`drover`: run services, or talk to a running mesh."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from drover.cli import auth, catalog, client, servers
from drover.config import DroverConfig, load_config

app = typer.Typer(
    help="drover: boot servers through a gRPC mesh (api, conductor, scheduler, compute).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(servers.app, name="server")
app.add_typer(catalog.flavor_app, name="flavor")
app.add_typer(catalog.image_app, name="image")
app.add_typer(catalog.network_app, name="network")
app.add_typer(catalog.host_app, name="host")
app.add_typer(auth.token_app, name="token")
app.add_typer(auth.policy_app, name="policy")
db_app = typer.Typer(help="The store.", no_args_is_help=True)
app.add_typer(db_app, name="db")

ConfigOpt = Annotated[str | None, typer.Option("--config", help="TOML configuration file (env DROVER_CONFIG).")]
DataOpt = Annotated[str | None, typer.Option("--data-dir", help="Where the embedded store and logs live.")]
DbOpt = Annotated[str | None, typer.Option("--database-url", help="SQLAlchemy URL (default: SQLite in data dir).")]


@app.callback()
def _root(
    token: Annotated[str | None, typer.Option(
        "--token", help="Bearer token for the API (else env DROVER_TOKEN, else a local mesh's "
                        "<data_dir>/admin.token).")] = None,
) -> None:
    client.token_option = token


def _config(config: str | None, data_dir: str | None, database_url: str | None, **sections: dict) -> DroverConfig:
    return load_config(config, data_dir=data_dir, database_url=database_url, **sections)


@app.command()
def up(
    driver: Annotated[str, typer.Option("--driver", help="fake or libvirt")] = "fake",
    fake_hosts: Annotated[int | None, typer.Option("--fake-hosts", help="Hosts the fake agent presents.")] = None,
    config: ConfigOpt = None,
    data_dir: DataOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Run the whole mesh (four services, one compute agent, embedded store) until Ctrl-C."""
    from drover.cli.mesh import run_mesh

    cfg = _config(config, data_dir, database_url, compute={"driver": driver, "fake_hosts": fake_hosts})
    env = {"DROVER_DATA_DIR": str(cfg.data_path), "DROVER_COMPUTE__DRIVER": cfg.compute.driver,
           "DROVER_COMPUTE__FAKE_HOSTS": str(cfg.compute.fake_hosts)}
    if cfg.database_url:
        env["DROVER_DATABASE_URL"] = cfg.database_url
    if config:
        env["DROVER_CONFIG"] = os.path.abspath(config)
    raise typer.Exit(run_mesh(cfg, env))


@app.command()
def api(listen: Annotated[str | None, typer.Option("--listen")] = None, config: ConfigOpt = None,
        data_dir: DataOpt = None, database_url: DbOpt = None) -> None:
    """Run the ApiService."""
    from drover.services.api.service import main

    main(_config(config, data_dir, database_url, api={"listen": listen}))


@app.command()
def conductor(listen: Annotated[str | None, typer.Option("--listen")] = None, config: ConfigOpt = None,
              data_dir: DataOpt = None, database_url: DbOpt = None) -> None:
    """Run the ConductorService."""
    from drover.services.conductor.service import main

    main(_config(config, data_dir, database_url, conductor={"listen": listen}))


@app.command()
def scheduler(listen: Annotated[str | None, typer.Option("--listen")] = None, config: ConfigOpt = None,
              data_dir: DataOpt = None, database_url: DbOpt = None) -> None:
    """Run the SchedulerService."""
    from drover.services.scheduler.service import main

    main(_config(config, data_dir, database_url, scheduler={"listen": listen}))


@app.command()
def compute(
    driver: Annotated[str | None, typer.Option("--driver", help="fake or libvirt")] = None,
    fake_hosts: Annotated[int | None, typer.Option("--fake-hosts")] = None,
    listen: Annotated[str | None, typer.Option("--listen")] = None,
    config: ConfigOpt = None,
    data_dir: DataOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Run a compute agent."""
    from drover.services.compute.service import main

    main(_config(config, data_dir, database_url,
                 compute={"driver": driver, "fake_hosts": fake_hosts, "listen": listen}))


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None, data_dir: DataOpt = None, database_url: DbOpt = None) -> None:
    """Migrate the store to the newest schema and seed the default flavors and network."""
    from drover.store.seed import prepare

    cfg = _config(config, data_dir, database_url)
    prepare(cfg.db_url)
    typer.echo(f"store ready: {cfg.db_url}")


if __name__ == "__main__":
    app()
